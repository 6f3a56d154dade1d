//! The whole path, as in the README's demo: the AWS emulator holds a Windows container instance
//! whose password only its key pair can decrypt; FreeRDP's shadow server stands in for the
//! instance, with an `Administrator` account holding that password; `ecsrdp <cluster>/<instance>
//! --via` resolves, decrypts and connects.

mod support;

use support::{read_png, Emulator, Run, Shadow, Xvfb};

#[test]
fn cluster_instance_via_a_tunnel_shows_the_desktop() {
    let emu = Emulator::shared();
    let xvfb = Xvfb::start(800, 600);
    let password = emu.field("win-pkcs1", "password");
    let shadow = Shadow::start(&xvfb, "nla", "Administrator", &password);
    xvfb.run("xsetroot", &["-solid", "#ff8000"]);
    let home = tempfile::tempdir().unwrap();
    let png = home.path().join("out.png");
    let run = Run::of(
        emu.ecsrdp(home.path())
            .arg(emu.target("win-pkcs1"))
            .args(["--key", &emu.field("win-pkcs1", "key_file")])
            .args(["--via", &format!("127.0.0.1:{}", shadow.port)])
            .args(["--headless", "--trust-new", "--exit-after", "2s"])
            .args(["--snapshot", png.to_str().unwrap()]),
    );
    run.succeeds();
    let (_, _, pixels) = read_png(&png);
    let orange = pixels
        .chunks_exact(3)
        .filter(|p| p[0] > 240 && (0x70..0x90).contains(&p[1]) && p[2] < 16)
        .count();
    assert!(
        orange * 100 > pixels.len() / 3 * 99,
        "the snapshot is the instance's desktop"
    );

    // The certificate is remembered under the EC2 instance ID, not the tunnel's address.
    let listed = Run::of(support::ecsrdp(home.path()).args(["trust", "list"]));
    assert!(listed
        .stdout
        .starts_with(&emu.field("win-pkcs1", "ec2_instance_id")));
}

#[test]
fn connecting_to_an_unreachable_instance_explains_the_security_group() {
    let emu = Emulator::shared();
    let home = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let run = Run::of(
        emu.ecsrdp(home.path())
            .arg(emu.target("win-pkcs1"))
            .args(["--key", &emu.field("win-pkcs1", "key_file")])
            .args(["--via", &format!("127.0.0.1:{port}"), "--headless"]),
    );
    run.fails(5, "security group admits TCP");
}
