//! Parts of the graphics pipeline's surfaces, and the lists of them that changed: what
//! [`super::surfaces`] remembers between a change and the screen showing it.

use ironrdp_pdu::geometry::ExclusiveRectangle;

/// RGBX.
pub(super) const BYTES_PER_PIXEL: usize = 4;

/// The most changed areas remembered for the frame being built; past it, each surface's are
/// merged into one, so a server sending thousands of small fills keeps the list short.
pub(super) const MAX_AREAS: usize = 256;

/// A part of a surface, inside it and not empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Area {
    pub(super) surface: u16,
    pub(super) left: u16,
    pub(super) top: u16,
    pub(super) right: u16,
    pub(super) bottom: u16,
}

impl Area {
    pub(super) fn bytes(&self) -> usize {
        usize::from(self.right - self.left) * usize::from(self.bottom - self.top) * BYTES_PER_PIXEL
    }

    pub(super) fn rect(&self) -> ExclusiveRectangle {
        ExclusiveRectangle {
            left: self.left,
            top: self.top,
            right: self.right,
            bottom: self.bottom,
        }
    }

    pub(super) fn contains(&self, other: &Area) -> bool {
        self.surface == other.surface
            && self.left <= other.left
            && self.top <= other.top
            && other.right <= self.right
            && other.bottom <= self.bottom
    }

    pub(super) fn union(&self, other: &Area) -> Area {
        Area {
            surface: self.surface,
            left: self.left.min(other.left),
            top: self.top.min(other.top),
            right: self.right.max(other.right),
            bottom: self.bottom.max(other.bottom),
        }
    }
}

/// The part of `rect` inside a `width` by `height` surface, or `None` if nothing is.
pub(super) fn clip(id: u16, rect: &ExclusiveRectangle, width: u16, height: u16) -> Option<Area> {
    let area = Area {
        surface: id,
        left: rect.left,
        top: rect.top,
        right: rect.right.min(width),
        bottom: rect.bottom.min(height),
    };
    (area.left < area.right && area.top < area.bottom).then_some(area)
}

/// Adds `area` to `areas` unless one there holds it, dropping those it holds; past
/// [`MAX_AREAS`], each surface's areas become the one that holds them all. `false` when even
/// that leaves too many (changes on hundreds of surfaces).
pub(super) fn remember(areas: &mut Vec<Area>, area: Area) -> bool {
    // Held by one since which no other surface changed: surfaces may overlap on the screen.
    let latest = areas
        .iter()
        .rev()
        .take_while(|known| known.surface == area.surface);
    if latest.into_iter().any(|known| known.contains(&area)) {
        return true;
    }
    areas.retain(|known| !area.contains(known));
    areas.push(area);
    if areas.len() <= MAX_AREAS {
        return true;
    }
    let mut merged: Vec<Area> = Vec::new();
    for area in areas.drain(..) {
        match merged.iter_mut().find(|m| m.surface == area.surface) {
            Some(m) => *m = m.union(&area),
            None => merged.push(area),
        }
        if merged.len() > MAX_AREAS / 2 {
            return false;
        }
    }
    *areas = merged;
    true
}

/// A rectangle from its edges, for the tests of this folder.
#[cfg(test)]
pub(super) fn rect(left: u16, top: u16, right: u16, bottom: u16) -> ExclusiveRectangle {
    ExclusiveRectangle {
        left,
        top,
        right,
        bottom,
    }
}
