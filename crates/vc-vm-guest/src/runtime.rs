//! What a wasm32 module needs to run: an allocator and a panic handler.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

const PAGE: usize = 65_536;

/// A bump allocator over the initial memory's free end, then pages the module grows: every
/// hook call starts from the module's initial memory (`docs/vm.md` section 1), so nothing
/// needs freeing, and growth past the manifest's
/// memory traps in the host (the operation is rejected as out of memory).
struct Bump {
    /// (next free byte, end of the grown region)
    region: UnsafeCell<(usize, usize)>,
}

// wasm32-unknown-unknown modules are single-threaded.
unsafe impl Sync for Bump {}

extern "C" {
    /// Where the linker's layout (stack, then data) ends: the rest of the initial memory is
    /// free.
    static __heap_base: u8;
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let region = &mut *self.region.get();
        if region.1 == 0 {
            // The first allocation of the call: start with the free end of the initial memory,
            // so that a call that needs little grows nothing (each growth costs fuel and, in
            // the host, a copy of the whole memory).
            let base = &__heap_base as *const u8 as usize;
            let end = core::arch::wasm32::memory_size(0) * PAGE;
            if end > base {
                *region = (base, end);
            }
        }
        let align = layout.align();
        let start = match region.0.checked_add(align - 1) {
            Some(n) => n & !(align - 1),
            None => return core::ptr::null_mut(),
        };
        let end = match start.checked_add(layout.size()) {
            Some(e) => e,
            None => return core::ptr::null_mut(),
        };
        if end <= region.1 && region.1 != 0 {
            region.0 = end;
            return start as *mut u8;
        }
        // Grow enough for this allocation, aligned, in a region of its own if the memory's
        // end moved (it does not: only this allocator grows memory).
        let need = layout.size() + align;
        let pages = (need + PAGE - 1) / PAGE;
        let prev = core::arch::wasm32::memory_grow(0, pages);
        if prev == usize::MAX {
            return core::ptr::null_mut();
        }
        let base = prev * PAGE;
        let (from, to) = if region.1 == base {
            (region.0, base + pages * PAGE)
        } else {
            (base, base + pages * PAGE)
        };
        region.0 = from;
        region.1 = to;
        self.alloc(layout)
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    region: UnsafeCell::new((0, 0)),
};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    crate::sys::reject("panic", "the guest panicked");
    core::arch::wasm32::unreachable()
}
