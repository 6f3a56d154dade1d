//! The test server's dynamic channels (MS-RDPEDYC), IronRDP's servers of each: the graphics
//! pipeline (MS-RDPEGFX) paints the test pattern as one AVC420 picture, what Windows sends by
//! default, and Display Control (MS-RDPEDISP) records the layouts the client asks for. OpenH264 encodes it from full-range BT.709 YUV 4:2:0, the colours
//! MS-RDPEGFX names for AVC420 (3.3.8.3.1), converted here from the pattern.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use ironrdp_displaycontrol::pdu::DisplayControlMonitorLayout;
use ironrdp_displaycontrol::server::{DisplayControlHandler, DisplayControlServer};
use ironrdp_dvc::{encode_dvc_messages, DrdynvcServer};
use ironrdp_egfx::pdu::{Avc420Region, CapabilitiesAdvertisePdu, CapabilitySet};
use ironrdp_egfx::server::{GraphicsPipelineHandler, GraphicsPipelineServer};
use ironrdp_svc::{server_encode_svc_messages, ChannelFlags, StaticChannelSet, SvcMessage};
use openh264::decoder::Decoder;
use openh264::encoder::{BitRate, Encoder, EncoderConfig, QpRange};
use openh264::formats::{YUVBuffer, YUVSource as _};
use openh264::OpenH264API;

use super::TestServer;

/// The static channel that carries the dynamic ones, to attach to the acceptor; the layouts
/// asked for go to `layouts`.
pub(super) fn channel(layouts: Layouts) -> DrdynvcServer {
    DrdynvcServer::new()
        .with_dynamic_channel(GraphicsPipelineServer::new(Box::new(Quiet)))
        .with_dynamic_channel(DisplayControlServer::new(Box::new(layouts)))
}

/// A monitor layout as a client asked for it: width, height, scale factor.
pub type Layout = (u32, u32, Option<u32>);

/// Each monitor layout a client sent over Display Control.
#[derive(Clone, Default)]
pub struct Layouts(pub(super) Arc<Mutex<Vec<Layout>>>);

impl DisplayControlHandler for Layouts {
    fn monitor_layout(&self, layout: DisplayControlMonitorLayout) {
        if let Some(monitor) = layout.monitors().first() {
            let (width, height) = monitor.dimensions();
            super::lock(&self.0).push((width, height, monitor.desktop_scale_factor()));
        }
    }
}

/// The server needs nothing from the pipeline's events: it paints once the pipeline is ready.
struct Quiet;

impl GraphicsPipelineHandler for Quiet {
    fn capabilities_advertise(&mut self, _: &CapabilitiesAdvertisePdu) {}
    fn on_ready(&mut self, _: &CapabilitySet) {}
}

/// The pipeline on one connection: starts the dynamic channels, answers the client on them,
/// and paints the desktop once the client has confirmed the pipeline.
pub(super) struct Pipeline {
    drdynvc: u16,
    user: u16,
    width: u16,
    height: u16,
    painted: bool,
    /// The H.264 picture sent, once it is.
    pub(super) sent: Option<Vec<u8>>,
}

impl Pipeline {
    /// The pipeline, and the bytes that open the dynamic channels (their capabilities).
    pub(super) fn start(
        channels: &mut StaticChannelSet,
        user: u16,
        (width, height): (u16, u16),
    ) -> anyhow::Result<(Pipeline, Vec<u8>)> {
        let drdynvc = channels
            .get_channel_id_by_type::<DrdynvcServer>()
            .context("the client did not join drdynvc")?;
        let opening = channels
            .get_by_channel_id_mut(drdynvc)
            .context("drdynvc")?
            .start()
            .context("start drdynvc")?;
        let pipeline = Pipeline {
            drdynvc,
            user,
            width,
            height,
            painted: false,
            sent: None,
        };
        let bytes = pipeline.encode(opening)?;
        Ok((pipeline, bytes))
    }

    /// The client's data on `channel`: what to answer, and whether the desktop was painted now.
    pub(super) fn process(
        &mut self,
        channels: &mut StaticChannelSet,
        channel: u16,
        data: &[u8],
    ) -> anyhow::Result<(Vec<u8>, bool)> {
        if channel != self.drdynvc {
            return Ok((Vec::new(), false));
        }
        let svc = channels.get_by_channel_id_mut(channel).context("drdynvc")?;
        let mut answers = svc.process(data).context("drdynvc data")?;
        let drdynvc = svc
            .channel_processor_downcast_mut::<DrdynvcServer>()
            .context("drdynvc")?;
        let painting = !self.painted;
        if let Some(gfx_id) = drdynvc.get_channel_id_by_type::<GraphicsPipelineServer>() {
            let Some(mut gfx) = drdynvc.dvc_by_id_mut::<GraphicsPipelineServer>(gfx_id) else {
                return Ok((self.encode(answers)?, false));
            };
            let gfx = gfx.processor_mut();
            if painting && gfx.is_ready() {
                let surface = gfx
                    .create_surface(self.width, self.height)
                    .context("create a surface")?;
                gfx.map_surface_to_output(surface, 0, 0);
                let region = Avc420Region::new(0, 0, self.width, self.height, 22, 100);
                let picture = picture(self.width, self.height)?;
                gfx.send_avc420_frame(surface, &picture, &[region], 0)
                    .context("send the AVC420 frame")?;
                self.sent = Some(picture);
                self.painted = true;
            }
            let output = gfx.drain_output();
            answers.extend(
                encode_dvc_messages(gfx_id, output, ChannelFlags::SHOW_PROTOCOL)
                    .context("encode the pipeline's PDUs")?,
            );
        }
        Ok((self.encode(answers)?, painting && self.painted))
    }

    fn encode(&self, messages: Vec<SvcMessage>) -> anyhow::Result<Vec<u8>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        server_encode_svc_messages(messages, self.drdynvc, self.user).context("encode drdynvc")
    }
}

/// The test pattern as one H.264 picture: full-range BT.709, chroma averaged over 2×2 pixels.
fn picture(width: u16, height: u16) -> anyhow::Result<Vec<u8>> {
    let (w, h) = (usize::from(width), usize::from(height));
    let rgb = |x: usize, y: usize| {
        // INVARIANT: x < width and y < height, both u16.
        let [b, g, r, _] = TestServer::expected_pixel(x as u16, y as u16);
        (f32::from(r), f32::from(g), f32::from(b))
    };
    let luma = |(r, g, b): (f32, f32, f32)| 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let byte = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let mut yuv = Vec::with_capacity(w * h * 3 / 2);
    for y in 0..h {
        for x in 0..w {
            yuv.push(byte(luma(rgb(x, y))));
        }
    }
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for y in (0..h).step_by(2) {
        for x in (0..w).step_by(2) {
            let (mut cb, mut cr) = (0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let pixel = rgb((x + dx).min(w - 1), (y + dy).min(h - 1));
                let l = luma(pixel);
                cb += (pixel.2 - l) / 1.8556;
                cr += (pixel.0 - l) / 1.5748;
            }
            u.push(byte(cb / 4.0 + 128.0));
            v.push(byte(cr / 4.0 + 128.0));
        }
    }
    yuv.extend(u);
    yuv.extend(v);
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(40_000_000))
        .qp(QpRange::new(0, 18));
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).context("an H.264 encoder")?;
    let bitstream = encoder
        .encode(&YUVBuffer::from_vec(yuv, w, h))
        .context("encode the picture")?
        .to_vec();
    Ok(bitstream)
}

/// What a client shows for `picture`, as RGB rows: decoded by OpenH264, converted with the
/// full-range BT.709 of MS-RDPEGFX here (not with IronRDP's conversion, which the client uses),
/// each chroma sample for its 2×2 pixels.
pub(super) fn shown(picture: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut decoder = Decoder::new().context("an H.264 decoder")?;
    let yuv = decoder
        .decode(picture)
        .context("decode the picture")?
        .context("a whole picture")?;
    let (w, h) = yuv.dimensions();
    let (y_stride, chroma_stride, _) = yuv.strides();
    let (luma, u, v) = (yuv.y(), yuv.u(), yuv.v());
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let l = f32::from(luma[y * y_stride + x]);
            let c = (y / 2) * chroma_stride + x / 2;
            let (cb, cr) = (f32::from(u[c]) - 128.0, f32::from(v[c]) - 128.0);
            for value in [
                l + 1.5748 * cr,
                l - 0.1873 * cb - 0.4681 * cr,
                l + 1.8556 * cb,
            ] {
                rgb.push(value.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Ok(rgb)
}
