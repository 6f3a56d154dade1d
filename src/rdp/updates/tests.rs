//! The updates' splitting, fragments and re-encoding, and the frame acknowledgements, against
//! IronRDP's session.

use std::borrow::Cow;

use ironrdp_core::encode_vec;
use ironrdp_pdu::fast_path::{
    EncryptionFlags, FastPathUpdate, FastPathUpdatePdu, Fragmentation, UpdateCode,
};
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};

use ironrdp_pdu::bitmap::{BitmapData, BitmapUpdateData, Compression};
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::surface_commands::SurfaceCommand;

use super::surface::reencoded;
use super::*;
use crate::render::{Canvas, PIXEL_FORMAT};

fn update(code: UpdateCode, fragmentation: Fragmentation, data: &[u8]) -> Vec<u8> {
    encode_vec(&FastPathUpdatePdu {
        fragmentation,
        update_code: code,
        compression_flags: None,
        compression_type: None,
        data,
    })
    .unwrap()
}

/// A surface-commands update in three fragments over two PDUs, with a pointer update between
/// them and one after: IronRDP gets the pointer updates, in order, and the surface commands come
/// out whole, once.
#[test]
fn fragments_are_put_together_and_the_rest_passed_on_in_order() {
    let commands: Vec<u8> = (0..=255).collect();
    let (a, rest) = commands.split_at(100);
    let (b, c) = rest.split_at(100);
    let hidden = update(UpdateCode::HiddenPointer, Fragmentation::Single, &[]);
    let default = update(UpdateCode::DefaultPointer, Fragmentation::Single, &[]);
    let first: Vec<u8> = [
        update(UpdateCode::SurfaceCommands, Fragmentation::First, a),
        hidden.clone(),
        update(UpdateCode::SurfaceCommands, Fragmentation::Next, b),
    ]
    .concat();
    let second: Vec<u8> = [
        update(UpdateCode::SurfaceCommands, Fragmentation::Last, c),
        default.clone(),
    ]
    .concat();
    let mut surfaces = Updates::default();
    let pdu = fast_path(EncryptionFlags::empty(), &first);
    let steps = surfaces.split(&pdu).unwrap().unwrap();
    assert!(
        matches!(&steps[..], [Step::Theirs(p)] if *p == fast_path(EncryptionFlags::empty(), &hidden))
    );
    let pdu = fast_path(EncryptionFlags::empty(), &second);
    let steps = surfaces.split(&pdu).unwrap().unwrap();
    match &steps[..] {
        [Step::Surface(Cow::Owned(whole)), Step::Theirs(p)] => {
            assert_eq!(whole, &commands);
            assert_eq!(p, &fast_path(EncryptionFlags::empty(), &default));
        }
        _ => panic!("{} steps", steps.len()),
    }
    // From an update that does not parse on, the rest of a PDU is IronRDP's to judge.
    let truncated = [
        update(UpdateCode::SurfaceCommands, Fragmentation::Single, a),
        vec![UpdateCode::Bitmap.as_u8(), 0xff, 0xff, 1, 2],
    ]
    .concat();
    let pdu = fast_path(EncryptionFlags::empty(), &truncated);
    let steps = surfaces.split(&pdu).unwrap().unwrap();
    match &steps[..] {
        [Step::Surface(Cow::Borrowed(whole)), Step::Theirs(p)] => {
            assert_eq!(*whole, a);
            assert_eq!(
                p,
                &fast_path(EncryptionFlags::empty(), &truncated[a.len() + 3..])
            );
        }
        _ => panic!("{} steps", steps.len()),
    }
    // A PDU without surface commands is IronRDP's as it came.
    assert!(surfaces
        .split(&fast_path(EncryptionFlags::empty(), &hidden))
        .unwrap()
        .is_none());
    // A fragment without its first is an error, said as one.
    let orphan = fast_path(
        EncryptionFlags::empty(),
        &update(UpdateCode::SurfaceCommands, Fragmentation::Last, c),
    );
    let error = surfaces.split(&orphan).err().unwrap();
    assert!(error.contains("without its first"), "{error}");
    // A bitmap update's fragments come out whole as a bitmap update; another kind's last
    // fragment does not end them.
    let bitmap = fast_path(
        EncryptionFlags::empty(),
        &[
            update(UpdateCode::Bitmap, Fragmentation::First, a),
            update(UpdateCode::Bitmap, Fragmentation::Last, b),
        ]
        .concat(),
    );
    match &surfaces.split(&bitmap).unwrap().unwrap()[..] {
        [Step::Bitmap(whole)] => assert_eq!(whole.as_ref(), &commands[..200]),
        steps => panic!("{} steps", steps.len()),
    }
    let mixed = fast_path(
        EncryptionFlags::empty(),
        &[
            update(UpdateCode::Bitmap, Fragmentation::First, a),
            update(UpdateCode::SurfaceCommands, Fragmentation::Last, b),
        ]
        .concat(),
    );
    let error = surfaces.split(&mixed).err().unwrap();
    assert!(error.contains("without its first"), "{error}");
}

/// Other codecs' surface commands go to IronRDP re-encoded, each in an update of its own (so
/// that IronRDP's damage is its rectangle, not a union over ecsrdp's pixels), in fragments when
/// large, and come back out of IronRDP's reassembly whole.
#[test]
fn large_runs_for_ironrdp_are_fragmented() {
    use ironrdp_pdu::geometry::ExclusiveRectangle;
    use ironrdp_pdu::surface_commands::{ExtendedBitmapDataPdu, SurfaceBitsPdu};
    let pixels = vec![7u8; 100 * 100 * 4];
    let bits = SurfaceCommand::SetSurfaceBits(SurfaceBitsPdu {
        destination: ExclusiveRectangle {
            left: 0,
            top: 0,
            right: 100,
            bottom: 100,
        },
        extended_bitmap_data: ExtendedBitmapDataPdu {
            bpp: 32,
            codec_id: 0,
            width: 100,
            height: 100,
            header: None,
            data: &pixels,
        },
    });
    let pdus = reencoded(vec![bits.clone()]);
    assert_eq!(pdus.len(), 3, "40 kB in 16 kB fragments");
    assert_eq!(
        reencoded(vec![bits.clone(), bits]).len(),
        6,
        "an update each"
    );
    let mut stage = stage();
    let mut image = DecodedImage::new(PIXEL_FORMAT, 128, 128);
    for pdu in &pdus {
        stage
            .process(&mut image, ironrdp_pdu::Action::FastPath, pdu, None)
            .unwrap();
    }
    let painted = image.data().chunks_exact(4).filter(|p| p[0] == 7).count();
    assert_eq!(painted, 100 * 100);
}

/// ecsrdp acknowledges the frames of a RemoteFX session as IronRDP's session would have, byte
/// for byte, on the session FreeRDP's shadow server sent.
#[test]
fn frames_are_acknowledged_as_ironrdp_acknowledges_them() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/resources/streams/shadow-rfx.bin"
    );
    let stream = std::fs::read(path).unwrap();
    let acks = |outputs: Vec<ActiveStageOutput>| -> Vec<Vec<u8>> {
        outputs
            .into_iter()
            .filter_map(|o| match o {
                // IronRDP answers a frame's beginning with nothing, which the session skips.
                ActiveStageOutput::ResponseFrame(bytes) if !bytes.is_empty() => Some(bytes),
                _ => None,
            })
            .collect()
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_stage, mut their_stage) = (stage(), stage());
    let mut surfaces = Updates::default();
    let mut canvas = Canvas::new(1024, 768);
    let mut image = DecodedImage::new(PIXEL_FORMAT, 1024, 768);
    let mut rest = &stream[..];
    while let Ok(Some(info)) = ironrdp_pdu::find_size(rest) {
        let (pdu, next) = rest.split_at(info.length);
        rest = next;
        if info.action != ironrdp_pdu::Action::FastPath {
            continue;
        }
        let decoded = crate::rdp::session::decode(
            &mut our_stage,
            &mut surfaces,
            &mut canvas,
            IO,
            info.action,
            pdu,
            None,
            "test",
        )
        .unwrap()
        .unwrap();
        ours.extend(acks(decoded.outputs));
        let outputs = their_stage
            .process(&mut image, info.action, pdu, None)
            .unwrap();
        theirs.extend(acks(outputs));
    }
    assert!(theirs.len() > 8, "{} acknowledgements", theirs.len());
    assert_eq!(ours, theirs);
}

const IO: u16 = 1003;

fn stage() -> ActiveStage {
    ActiveStageBuilder {
        static_channels: ironrdp_svc::StaticChannelSet::new(),
        user_channel_id: 1002,
        io_channel_id: IO,
        message_channel_id: None,
        share_id: 0x0001_03ea,
        compression_type: None,
        enable_server_pointer: true,
        pointer_software_rendering: false,
    }
    .build()
}

/// A bitmap update whose planar bitmaps are ecsrdp's and whose others are IronRDP's, each
/// drawn over the one before: the frame ends as IronRDP's session leaves its image, so the
/// runs were painted in the server's order; a planar bitmap past the image is IronRDP's (which
/// passes it over), one wider than the image no one's.
#[test]
fn bitmaps_of_one_update_are_painted_in_order() {
    let (red, blue) = (planar([200, 10, 20]), planar([5, 30, 220]));
    let green = [0u8, 180, 40, 0].repeat(16);
    let update = bitmap_update(vec![
        bitmap(at(0, 0), true, &red),
        bitmap(at(2, 2), false, &green),
        bitmap(at(3, 3), true, &blue),
        bitmap(at(62, 62), true, &red),
    ]);
    assert!(matches!(
        &bitmaps(&update, (64, 64))[..],
        [Run::Ours(a), Run::Theirs(_), Run::Ours(b), Run::Theirs(_)] if a.len() == 1 && b.len() == 1
    ));
    let wide = BitmapData {
        width: 68,
        ..bitmap(at(0, 0), true, &red)
    };
    assert!(bitmaps(&bitmap_update(vec![wide]), (64, 64)).is_empty());
    let ours = painted_as_ironrdp_paints(&[update]);
    // Each of the three is seen: red, then green over it, then blue over that.
    assert_eq!(
        (ours[0][0], ours[2][2 * 4 + 1], ours[6][6 * 4 + 2]),
        (200, 180, 220)
    );
}

/// IronRDP reports an update's damage as the union of its rectangles: two of its bitmaps on
/// either side of one of ecsrdp's must not bring back what its image holds in between.
#[test]
fn ironrdps_bitmaps_leave_ecsrdps_alone() {
    let red = planar([200, 10, 20]);
    let green = [0u8, 180, 40, 0].repeat(16);
    let ours = painted_as_ironrdp_paints(&[
        bitmap_update(vec![bitmap(at(4, 0), true, &red)]),
        bitmap_update(vec![
            bitmap(at(0, 0), false, &green),
            bitmap(at(8, 0), false, &green),
        ]),
    ]);
    assert_eq!((ours[1][5 * 4], ours[1][4 + 1]), (200, 180));
}

/// A 4×4 planar bitmap (RLE) of one colour.
fn planar(rgb: [u8; 3]) -> Vec<u8> {
    use ironrdp_graphics::rdp6::{BitmapStreamEncoder, RgbChannels};
    let pixels = rgb.repeat(16);
    let mut data = vec![0; pixels.len() + 64];
    let written = BitmapStreamEncoder::new(4, 4)
        .encode_bitmap::<RgbChannels>(&pixels, &mut data, true)
        .unwrap();
    data.truncate(written);
    data
}

/// The 4×4 square at (`left`, `top`).
fn at(left: u16, top: u16) -> InclusiveRectangle {
    InclusiveRectangle {
        left,
        top,
        right: left + 3,
        bottom: top + 3,
    }
}

/// A 4×4 32-bit bitmap: planar, or uncompressed.
fn bitmap(to: InclusiveRectangle, planar: bool, data: &[u8]) -> BitmapData<'_> {
    BitmapData {
        rectangle: to,
        width: 4,
        height: 4,
        bits_per_pixel: 32,
        compression_flags: if planar {
            Compression::BITMAP_COMPRESSION | Compression::NO_BITMAP_COMPRESSION_HDR
        } else {
            Compression::empty()
        },
        compressed_data_header: None,
        bitmap_data: data,
    }
}

/// A bitmap update's data.
fn bitmap_update(rectangles: Vec<BitmapData<'_>>) -> Vec<u8> {
    encode_vec(&FastPathUpdate::Bitmap(BitmapUpdateData { rectangles })).unwrap()
}

/// Plays the bitmap `updates` through ecsrdp's decoding onto a 16×8 desktop and through
/// IronRDP's session alone; asserts they leave the same pixels and returns ecsrdp's rows.
fn painted_as_ironrdp_paints(updates: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let (mut our_stage, mut their_stage) = (stage(), stage());
    let mut updates_state = Updates::default();
    let mut canvas = Canvas::new(16, 8);
    let mut image = DecodedImage::new(PIXEL_FORMAT, 64, 64);
    for update in updates {
        let pdu = pdus(UpdateCode::Bitmap, update).remove(0);
        let decoded = crate::rdp::session::decode(
            &mut our_stage,
            &mut updates_state,
            &mut canvas,
            IO,
            ironrdp_pdu::Action::FastPath,
            &pdu,
            None,
            "test",
        )
        .unwrap()
        .unwrap();
        assert!(decoded.damaged);
        their_stage
            .process(&mut image, ironrdp_pdu::Action::FastPath, &pdu, None)
            .unwrap();
    }
    let rows = |data: &[u8], width: usize| -> Vec<Vec<u8>> {
        data.chunks_exact(width * 4)
            .take(8)
            .map(|row| row[..16 * 4].to_vec())
            .collect()
    };
    let frame = canvas.frame();
    let frame = frame.lock();
    let ours = rows(frame.pixels().data, usize::from(frame.pixels().width));
    assert_eq!(ours, rows(image.data(), 64));
    ours
}
