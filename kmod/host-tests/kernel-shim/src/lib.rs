//! A stand-in for the few items of Linux 7.2's `rust/kernel` crate that
//! critmem.ko's pure code (`kmod/freemap.rs`) uses.
//!
//! It exists only so that the module's pure code compiles and runs under
//! `cargo test` on the build machine (`kmod/host-tests` depends on it under
//! the name `kernel`). It is never part of critmem.ko. Every item here must
//! stay signature-compatible with its namesake in Linux 7.2 (the paths,
//! argument and return types of `rust/kernel/alloc/kvec.rs`,
//! `rust/kernel/alloc.rs`, `rust/kernel/error.rs` and `pr_err!`), so that the
//! same source file builds in both places unchanged.
//!
//! The one thing the kernel has no counterpart for is
//! [`alloc::fail_allocations_after`]: tests use it to make allocations fail,
//! as `kmalloc` may in the kernel.
//!
//! [`KVec`](alloc::KVec) models the kernel's capacity exactly: `reserve`
//! grows to `max(2 * capacity, len + additional)`, as kvec.rs does, and the
//!
//! `*_within_capacity` methods fail at that capacity, whatever spare room
//! the standard vector behind it happens to have. Tests of capacity
//! invariants therefore see the kernel's numbers.

pub mod alloc {
    //! `kernel::alloc`: allocation flags, `AllocError` and `KVec`.

    use core::cell::Cell;

    /// `kernel::alloc::AllocError`.
    #[derive(Copy, Clone, PartialEq, Eq, Debug)]
    pub struct AllocError;

    /// `kernel::alloc::Flags`.
    #[derive(Clone, Copy, PartialEq)]
    pub struct Flags(u32);

    pub mod flags {
        //! `kernel::alloc::flags`.
        use super::Flags;

        /// `GFP_KERNEL`. The value is irrelevant here: nothing reads it.
        pub const GFP_KERNEL: Flags = Flags(0);
    }

    std::thread_local! {
        /// Allocations left before they start failing; `None`: never fail.
        static ALLOCATIONS_LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// Test hook with no kernel counterpart: on this thread, the next `n`
    /// allocations succeed and every one after them fails with
    /// [`AllocError`], until `fail_allocations_after(None)`.
    pub fn fail_allocations_after(n: Option<usize>) {
        ALLOCATIONS_LEFT.with(|left| left.set(n));
    }

    /// Whether the next allocation may succeed (and counts it).
    fn may_allocate() -> bool {
        ALLOCATIONS_LEFT.with(|left| match left.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                left.set(Some(n - 1));
                true
            }
        })
    }

    pub mod kvec {
        //! `kernel::alloc::kvec`: the vector and its errors.

        use super::{may_allocate, AllocError, Flags};
        use core::ops::{Deref, DerefMut};

        /// `kernel::alloc::kvec::Vec`, without the allocator parameter
        /// (the one alias used, [`KVec`](super::KVec), hides it).
        ///
        /// # Invariants
        ///
        /// `items.len() <= cap`; `cap` is the capacity the kernel's vector
        /// would have after the same calls.
        pub struct Vec<T> {
            items: std::vec::Vec<T>,
            cap: usize,
        }

        /// `kernel::alloc::kvec::PushError`.
        pub struct PushError<T>(pub T);

        /// `kernel::alloc::kvec::RemoveError`.
        pub struct RemoveError;

        /// `kernel::alloc::kvec::InsertError`.
        pub enum InsertError<T> {
            /// The index is past the end.
            IndexOutOfBounds(T),
            /// The vector is full.
            OutOfCapacity(T),
        }

        impl<T> Vec<T> {
            /// An empty vector of capacity 0; does not allocate.
            pub const fn new() -> Self {
                Self {
                    items: std::vec::Vec::new(),
                    cap: 0,
                }
            }

            /// A vector with room for `capacity` elements.
            pub fn with_capacity(capacity: usize, flags: Flags) -> Result<Self, AllocError> {
                let mut v = Self::new();
                v.reserve(capacity, flags)?;
                Ok(v)
            }

            /// Elements that fit without allocating.
            pub const fn capacity(&self) -> usize {
                self.cap
            }

            /// Number of elements (`const` in the kernel; not here, where the
            /// standard vector's `len` is not `const` at the MSRV).
            pub fn len(&self) -> usize {
                self.items.len()
            }

            /// Whether there are no elements.
            pub fn is_empty(&self) -> bool {
                self.items.is_empty()
            }

            /// Makes room for `additional` more elements, growing as the
            /// kernel's vector does.
            pub fn reserve(&mut self, additional: usize, _flags: Flags) -> Result<(), AllocError> {
                let len = self.len();
                if self.cap - len >= additional {
                    return Ok(());
                }
                let new_cap = (self.cap * 2).max(len.checked_add(additional).ok_or(AllocError)?);
                if !may_allocate() {
                    return Err(AllocError);
                }
                self.items.reserve_exact(new_cap - len);
                self.cap = new_cap;
                Ok(())
            }

            /// Appends `v`, allocating if needed.
            pub fn push(&mut self, v: T, flags: Flags) -> Result<(), AllocError> {
                self.reserve(1, flags)?;
                self.items.push(v);
                Ok(())
            }

            /// Appends `v` if there is room.
            pub fn push_within_capacity(&mut self, v: T) -> Result<(), PushError<T>> {
                if self.len() < self.cap {
                    self.items.push(v);
                    Ok(())
                } else {
                    Err(PushError(v))
                }
            }

            /// Inserts `element` at `index` if there is room.
            pub fn insert_within_capacity(
                &mut self,
                index: usize,
                element: T,
            ) -> Result<(), InsertError<T>> {
                if index > self.len() {
                    return Err(InsertError::IndexOutOfBounds(element));
                }
                if self.len() >= self.cap {
                    return Err(InsertError::OutOfCapacity(element));
                }
                self.items.insert(index, element);
                Ok(())
            }

            /// Removes and returns the element at `i`.
            pub fn remove(&mut self, i: usize) -> Result<T, RemoveError> {
                if i < self.len() {
                    Ok(self.items.remove(i))
                } else {
                    Err(RemoveError)
                }
            }
        }

        impl<T> Default for Vec<T> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<T> Deref for Vec<T> {
            type Target = [T];
            fn deref(&self) -> &[T] {
                &self.items
            }
        }

        impl<T> DerefMut for Vec<T> {
            fn deref_mut(&mut self) -> &mut [T] {
                &mut self.items
            }
        }

        impl<T: core::fmt::Debug> core::fmt::Debug for Vec<T> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                self.items.fmt(f)
            }
        }

        impl<'a, T> IntoIterator for &'a Vec<T> {
            type Item = &'a T;
            type IntoIter = core::slice::Iter<'a, T>;
            fn into_iter(self) -> Self::IntoIter {
                self.items.iter()
            }
        }
    }

    /// `kernel::alloc::KVec`.
    pub type KVec<T> = kvec::Vec<T>;
}

pub mod error {
    //! `kernel::error`: the error type and the codes used.

    use core::num::NonZeroI32;

    /// `kernel::error::Error`: a negative errno.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub struct Error(NonZeroI32);

    impl Error {
        /// The errno, negative.
        pub fn to_errno(self) -> i32 {
            self.0.get()
        }
    }

    impl core::fmt::Debug for Error {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match *self {
                code::EINVAL => f.write_str("EINVAL"),
                code::ENOMEM => f.write_str("ENOMEM"),
                e => write!(f, "Error({})", e.to_errno()),
            }
        }
    }

    impl From<crate::alloc::AllocError> for Error {
        fn from(_: crate::alloc::AllocError) -> Error {
            code::ENOMEM
        }
    }

    /// `kernel::error::Result`.
    pub type Result<T = (), E = Error> = core::result::Result<T, E>;

    pub mod code {
        //! `kernel::error::code`.
        use super::Error;
        use core::num::NonZeroI32;

        /// Out of memory.
        pub const ENOMEM: Error = Error(NonZeroI32::new(-12).unwrap());
        /// Invalid argument.
        pub const EINVAL: Error = Error(NonZeroI32::new(-22).unwrap());
    }
}

/// `kernel::pr_err!`: here, a line on standard error.
#[macro_export]
macro_rules! pr_err (
    ($($arg:tt)*) => (
        ::std::eprint!("critmem: {}", ::std::format_args!($($arg)*))
    )
);

pub mod init {
    //! A stand-in for `pin_init::Init`, which the kernel's prelude brings in.

    /// Implemented for every type, as the kernel's `Init` is, so that a
    /// method call the kernel build finds ambiguous with `Init::chain` (say
    /// `Iterator::chain` under `use kernel::prelude::*`) is ambiguous here
    /// too. Nothing calls it.
    pub trait Init<T, E = core::convert::Infallible>: Sized {
        /// `Init::chain`'s name and receiver; the body only hands its
        /// arguments back.
        fn chain<F>(self, f: F) -> (Self, F)
        where
            F: FnOnce(&mut T) -> Result<(), E>,
        {
            (self, f)
        }
    }

    impl<T, E> Init<T, E> for T {}
}

pub mod prelude {
    //! `kernel::prelude`: the part of it the module's pure code uses.
    pub use crate::alloc::{flags::*, KVec};
    pub use crate::error::{code::*, Error, Result};
    pub use crate::init::Init;
    pub use crate::pr_err;
}
