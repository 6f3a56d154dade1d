//! winit input events as IronRDP input operations (MS-RDPBCGR 2.2.8.1.2, fast-path input).

use ironrdp_input::{MouseButton, MousePosition, Operation, Scancode, WheelRotations};
use winit::event::{ElementState, KeyEvent, MouseButton as WinitButton, MouseScrollDelta};
use winit::keyboard::PhysicalKey;

use super::keymap::scancode;
use crate::render::Layout;

/// One wheel notch, in the units RDP counts (WHEEL_DELTA).
const NOTCH: f64 = 120.0;
/// Pixels of a touchpad scroll that make one notch.
const PIXELS_PER_NOTCH: f64 = 50.0;
/// The most one wheel event carries: the wire field is 9 bits, sign included
/// (MS-RDPBCGR 2.2.8.1.1.3.1.1.3), so bigger turns go out as several events.
const MAX_UNITS_PER_EVENT: i16 = 240;

/// The little state input mapping needs: where the mouse was, and partial wheel turns.
#[derive(Debug, Default)]
pub struct InputState {
    last: Option<(u16, u16)>,
    wheel: (f64, f64),
}

impl InputState {
    /// Forgets a part-turned wheel: its remainder must not add to turns after the focus left.
    pub fn reset_wheel(&mut self) {
        self.wheel = (0.0, 0.0);
    }

    /// A move to a desktop position, or `None` if it lands on the same desktop pixel.
    pub fn mouse_move(&mut self, layout: &Layout, x: f64, y: f64) -> Option<Operation> {
        let position = layout.to_desktop(x, y);
        if self.last == Some(position) {
            return None;
        }
        self.last = Some(position);
        Some(Operation::MouseMove(MousePosition {
            x: position.0,
            y: position.1,
        }))
    }

    /// Wheel turns; touchpad pixels accumulate until they make whole units.
    pub fn wheel(&mut self, delta: MouseScrollDelta) -> Vec<Operation> {
        let (dx, dy) = match delta {
            MouseScrollDelta::LineDelta(x, y) => (f64::from(x) * NOTCH, f64::from(y) * NOTCH),
            MouseScrollDelta::PixelDelta(p) => (
                p.x * NOTCH / PIXELS_PER_NOTCH,
                p.y * NOTCH / PIXELS_PER_NOTCH,
            ),
        };
        self.wheel.0 += dx;
        self.wheel.1 += dy;
        let mut ops = Vec::new();
        // winit: positive y scrolls up (wheel away from the user), as RDP's positive vertical
        // rotation; positive x scrolls left, while RDP's positive horizontal is right.
        for (vertical, amount, sign) in [
            (true, &mut self.wheel.1, 1i16),
            (false, &mut self.wheel.0, -1i16),
        ] {
            // A fling beyond this is noise; keep the event count bounded.
            let whole = amount.trunc().clamp(-4800.0, 4800.0);
            *amount -= amount.trunc();
            // INVARIANT: clamped to ±4800 just above, well inside i16.
            let mut left = whole as i16 * sign;
            while left != 0 {
                let step = left.clamp(-MAX_UNITS_PER_EVENT, MAX_UNITS_PER_EVENT);
                left -= step;
                ops.push(Operation::WheelRotations(WheelRotations {
                    is_vertical: vertical,
                    rotation_units: step,
                }));
            }
        }
        ops
    }
}

/// A key press or release by physical position. A key with no set-1 code (a media key on some
/// keyboards, a key an input method produced) goes as the text it typed, as Unicode events
/// (MS-RDPBCGR 2.2.8.1.2.2.2), so the character still arrives whatever the remote layout.
pub fn key(event: &KeyEvent) -> Vec<Operation> {
    key_with(event.physical_key, event.state, event.text.as_deref())
}

/// A held key repeating, when it has a set-1 code: one more press for the server.
pub fn repeat(event: &KeyEvent) -> Option<Scancode> {
    let PhysicalKey::Code(code) = event.physical_key else {
        return None;
    };
    let sc = scancode(code)?;
    (event.repeat && event.state == ElementState::Pressed)
        .then(|| Scancode::from_u8(sc.extended, sc.code))
}

fn key_with(physical: PhysicalKey, state: ElementState, text: Option<&str>) -> Vec<Operation> {
    let code = match physical {
        PhysicalKey::Code(code) => scancode(code),
        PhysicalKey::Unidentified(_) => None,
    };
    if let Some(sc) = code {
        let scancode = Scancode::from_u8(sc.extended, sc.code);
        return vec![match state {
            ElementState::Pressed => Operation::KeyPressed(scancode),
            ElementState::Released => Operation::KeyReleased(scancode),
        }];
    }
    match (text, state) {
        (Some(text), ElementState::Pressed) => text
            .chars()
            .flat_map(|c| {
                [
                    Operation::UnicodeKeyPressed(c),
                    Operation::UnicodeKeyReleased(c),
                ]
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub fn button(state: ElementState, button: WinitButton) -> Option<Operation> {
    let button = match button {
        WinitButton::Left => MouseButton::Left,
        WinitButton::Right => MouseButton::Right,
        WinitButton::Middle => MouseButton::Middle,
        WinitButton::Back => MouseButton::X1,
        WinitButton::Forward => MouseButton::X2,
        WinitButton::Other(_) => return None,
    };
    Some(match state {
        ElementState::Pressed => Operation::MouseButtonPressed(button),
        ElementState::Released => Operation::MouseButtonReleased(button),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_outside_the_bmp_goes_as_a_surrogate_pair() {
        let ops = key_with(
            PhysicalKey::Unidentified(winit::keyboard::NativeKeyCode::Unidentified),
            ElementState::Pressed,
            Some("😀"),
        );
        let events = ironrdp_input::Database::new().apply(ops);
        let units: Vec<u16> = events
            .iter()
            .filter_map(|e| match e {
                ironrdp_pdu::input::fast_path::FastPathInputEvent::UnicodeKeyboardEvent(
                    flags,
                    unit,
                ) if !flags.contains(ironrdp_pdu::input::fast_path::KeyboardFlags::RELEASE) => {
                    Some(*unit)
                }
                _ => None,
            })
            .collect();
        assert_eq!(units, "😀".encode_utf16().collect::<Vec<_>>(), "{events:?}");
    }

    #[test]
    fn touchpad_pixels_accumulate_into_wheel_units() {
        let mut state = InputState::default();
        let small = MouseScrollDelta::PixelDelta(winit::dpi::PhysicalPosition::new(0.0, 0.1));
        assert!(state.wheel(small).is_empty());
        let ops = state.wheel(MouseScrollDelta::LineDelta(0.0, 1.0));
        assert!(matches!(
            ops.as_slice(),
            [Operation::WheelRotations(WheelRotations {
                is_vertical: true,
                rotation_units: 120
            })]
        ));
    }

    #[test]
    fn a_fling_is_split_into_events_the_wire_can_carry() {
        let mut state = InputState::default();
        let ops = state.wheel(MouseScrollDelta::LineDelta(0.0, 5.0));
        let units: Vec<i16> = ops
            .iter()
            .map(|op| match op {
                Operation::WheelRotations(w) => w.rotation_units,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(units, [240, 240, 120]);
    }

    #[test]
    fn same_pixel_moves_are_skipped() {
        let mut state = InputState::default();
        let layout = Layout::unscaled((100, 100), (100, 100));
        assert!(state.mouse_move(&layout, 10.2, 10.0).is_some());
        assert!(state.mouse_move(&layout, 10.7, 10.9).is_none());
        assert!(state.mouse_move(&layout, 11.0, 10.0).is_some());
    }
}
