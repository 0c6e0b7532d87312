//! The response bytes the harness holds at once, bounded across every
//! connection of the process.
//!
//! The client caps each response ([`crate::client::MAX_BODY`]), but a cap per
//! response is no bound on the process: `concurrency/burst` holds 64
//! connections at once, a case group 8 deliveries, and several of them run
//! side by side, so a server that answers every request with an endless body
//! could make the harness buffer gigabytes. So every buffer that keeps
//! response bytes charges its capacity to the process-wide [`RESPONSES`]
//! through a [`Reservation`], which gives it back when the buffer shrinks or
//! is dropped; when the budget is spent, growing fails with [`Exhausted`] and
//! the read stops instead of buffering more.
//!
//! The budget has two shares. The first [`SMALL_SHARE`] bytes of every
//! reservation come from a share of their own (from the large one only when
//! that is spent), and only what a reservation holds beyond them from the
//! large one, so that a plain `GET /` still gets its answer while
//! deliveries elsewhere hold the rest with endless bodies: a check's verdict
//! must not depend on what another unit's server sent at the same time.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How much of every reservation comes from the small share.
pub const SMALL_SHARE: usize = 256 * 1024;
/// The small share of [`RESPONSES`]: [`SMALL_SHARE`] for 128 connections.
const SMALL_TOTAL: usize = 32 * 1024 * 1024;
/// The large share of [`RESPONSES`]: room for one response at its cap
/// ([`crate::client::MAX_BODY`]) and a half.
const LARGE_TOTAL: usize = 96 * 1024 * 1024;

/// Every response byte the harness keeps, on every connection, draws from this.
pub static RESPONSES: Budget = Budget::new(SMALL_TOTAL, LARGE_TOTAL);

/// Blocks at least this large get a mapping of their own from the allocator.
const MMAP_THRESHOLD: usize = 128 * 1024;

/// Makes the allocator give a large buffer back to the system when it is
/// freed, so that the process's size follows what the budget holds. Call it
/// once, first thing in `main`, before any thread exists: glibc's `mallopt`
/// is not thread-safe.
///
/// Why: glibc maps blocks above a threshold of their own, but raises that
/// threshold (up to 32 MiB) each time it frees such a block. After the first
/// large body is dropped, the growing buffers of the next ones come from its
/// heaps instead, where each growth is a copy and the freed blocks stay
/// resident as fragments: against a server whose every answer is endless,
/// a budget of 128 MiB then cost over 300 MB of resident memory, and 110 MB
/// with the threshold fixed. (Other allocators need nothing of this.)
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called before any other thread exists (see above), so nothing
    // allocates meanwhile; M_MMAP_THRESHOLD only sets a parameter, and
    // setting it also turns off the dynamic adjustment.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// Bytes in use against a limit.
#[derive(Debug)]
struct Share {
    limit: usize,
    in_use: AtomicUsize,
}

impl Share {
    const fn new(limit: usize) -> Share {
        Share {
            limit,
            in_use: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes` if they fit under the limit; all or nothing.
    fn take(&self, bytes: usize) -> bool {
        bytes == 0
            || self
                .in_use
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                    used.checked_add(bytes).filter(|&after| after <= self.limit)
                })
                .is_ok()
    }

    /// Gives back `bytes` taken earlier.
    fn give(&self, bytes: usize) {
        if bytes > 0 {
            self.in_use.fetch_sub(bytes, Ordering::AcqRel);
        }
    }
}

/// A total of bytes shared by every connection, in two shares (see the
/// module docs).
#[derive(Debug)]
pub struct Budget {
    small: Share,
    large: Share,
}

impl Budget {
    /// A budget of `small + large` bytes: `small` for the first
    /// [`SMALL_SHARE`] of each reservation, `large` for the rest.
    pub const fn new(small: usize, large: usize) -> Budget {
        Budget {
            small: Share::new(small),
            large: Share::new(large),
        }
    }

    /// The most bytes the budget lets be held at once.
    pub fn limit(&self) -> usize {
        self.small.limit + self.large.limit
    }

    /// The bytes held now.
    pub fn in_use(&self) -> usize {
        self.small.in_use.load(Ordering::Acquire) + self.large.in_use.load(Ordering::Acquire)
    }
}

/// The budget could not give the bytes asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// The budget's total, for the message.
    pub limit: usize,
}

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the harness holds at most {} MiB of responses at once",
            self.limit >> 20
        )
    }
}

impl std::error::Error for Exhausted {}

/// Bytes held from a [`Budget`] for one buffer; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: &'static Budget,
    /// Held from the small share; at most [`SMALL_SHARE`].
    small: usize,
    /// Held from the large share (beyond the small share, or in its stead).
    large: usize,
}

impl Reservation {
    /// A reservation of nothing yet, against `budget`.
    pub const fn new(budget: &'static Budget) -> Reservation {
        Reservation {
            budget,
            small: 0,
            large: 0,
        }
    }

    /// The bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.small + self.large
    }

    /// Holds exactly `bytes`: grows (all or nothing) or gives back the
    /// difference. Shrinking always succeeds.
    pub fn resize(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let held = self.bytes();
        if bytes <= held {
            self.give_back(held - bytes);
            return Ok(());
        }
        let more = bytes - held;
        // The small share first; when it is spent (many connections at
        // once), the large one stands in for it.
        let wanted = more.min(SMALL_SHARE - self.small);
        let small = if self.budget.small.take(wanted) {
            wanted
        } else {
            0
        };
        let large = more - small;
        if !self.budget.large.take(large) {
            self.budget.small.give(small);
            return Err(self.exhausted());
        }
        self.small += small;
        self.large += large;
        Ok(())
    }

    /// Holds `more` bytes besides what it holds (all or nothing).
    pub fn grow(&mut self, more: usize) -> Result<(), Exhausted> {
        let wanted = self.bytes().checked_add(more).ok_or(self.exhausted())?;
        self.resize(wanted)
    }

    /// Takes over what `other` holds (no bytes change hands with the budget).
    pub fn absorb(&mut self, mut other: Reservation) {
        debug_assert!(std::ptr::eq(self.budget, other.budget));
        // The small share stays within SMALL_SHARE per reservation; the
        // excess is counted as large, which only moves it between shares
        // of the same budget.
        let small = (self.small + other.small).min(SMALL_SHARE);
        let spill = self.small + other.small - small;
        self.budget.small.give(spill);
        self.budget.large.in_use.fetch_add(spill, Ordering::AcqRel);
        self.small = small;
        self.large += other.large + spill;
        other.small = 0;
        other.large = 0;
    }

    /// Gives back `bytes` (at most what is held), the large share first.
    fn give_back(&mut self, bytes: usize) {
        let large = bytes.min(self.large);
        let small = (bytes - large).min(self.small);
        self.budget.large.give(large);
        self.budget.small.give(small);
        self.large -= large;
        self.small -= small;
    }

    fn exhausted(&self) -> Exhausted {
        Exhausted {
            limit: self.budget.limit(),
        }
    }
}

impl Default for Reservation {
    /// A reservation of nothing yet, against [`RESPONSES`].
    fn default() -> Reservation {
        Reservation::new(&RESPONSES)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.give_back(self.bytes());
    }
}

/// Bytes received, in a buffer whose capacity is charged to a budget: what
/// the client keeps response bytes in.
#[derive(Debug, Default)]
pub struct HeldBuf {
    bytes: Vec<u8>,
    /// Covers `bytes.capacity()`, always.
    held: Reservation,
}

/// The smallest growth of a [`HeldBuf`]: one read of the client.
const MIN_GROWTH: usize = 16 * 1024;

impl HeldBuf {
    /// An empty buffer charged to `budget`.
    pub const fn new(budget: &'static Budget) -> HeldBuf {
        HeldBuf {
            bytes: Vec::new(),
            held: Reservation::new(budget),
        }
    }

    /// A charged copy of `bytes`, against the same budget as `self`.
    fn copy_of(&self, bytes: &[u8]) -> Result<HeldBuf, Exhausted> {
        let mut copy = HeldBuf::new(self.held.budget);
        copy.extend(bytes)?;
        Ok(copy)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// How many bytes there are.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes charged to the budget for this buffer.
    pub fn held(&self) -> usize {
        self.held.bytes()
    }

    /// Appends `more`, charging any growth of the capacity before it is
    /// allocated. When the budget cannot give it, nothing is appended.
    pub fn extend(&mut self, more: &[u8]) -> Result<(), Exhausted> {
        let needed = self.bytes.len().saturating_add(more.len());
        let capacity = self.bytes.capacity();
        if needed > capacity {
            // Grow by a quarter (amortised, and large buffers are remapped,
            // not copied), but settle for exactly what is needed when the
            // budget has no more.
            let roomy = needed.max(capacity + capacity / 4).max(MIN_GROWTH);
            if self.held.resize(roomy).is_err() {
                self.held.resize(needed)?;
            }
            self.bytes
                .reserve_exact(self.held.bytes() - self.bytes.len());
            self.settle();
        }
        self.bytes.extend_from_slice(more);
        Ok(())
    }

    /// Drops the first `n` bytes (all of them if there are fewer).
    pub fn consume(&mut self, n: usize) {
        self.bytes.drain(..n.min(self.bytes.len()));
    }

    /// Empties the buffer and gives its capacity back.
    pub fn release(&mut self) {
        self.bytes = Vec::new();
        self.settle();
    }

    /// Keeps the first `n` bytes and gives back the capacity beyond them.
    pub fn truncate(&mut self, n: usize) {
        self.bytes.truncate(n);
        self.bytes.shrink_to_fit();
        self.settle();
    }

    /// Takes the first `n` bytes out as a buffer of their own (all of them
    /// if there are fewer), leaving the rest. The larger part keeps this
    /// buffer's allocation; the smaller one is copied, and charged.
    pub fn split_front(&mut self, n: usize) -> Result<HeldBuf, Exhausted> {
        let n = n.min(self.bytes.len());
        if n == self.bytes.len() {
            let empty = HeldBuf::new(self.held.budget);
            return Ok(std::mem::replace(self, empty));
        }
        if n >= self.bytes.len() - n {
            let rest = self.copy_of(&self.bytes[n..])?;
            self.bytes.truncate(n);
            Ok(std::mem::replace(self, rest))
        } else {
            let front = self.copy_of(&self.bytes[..n])?;
            self.consume(n);
            Ok(front)
        }
    }

    /// The bytes and the reservation that covers them.
    pub fn into_parts(self) -> (Vec<u8>, Reservation) {
        // `HeldBuf` has no Drop of its own, so its fields can be moved out.
        (self.bytes, self.held)
    }

    /// Charges exactly the capacity the vector has. It is only ever called
    /// right after the capacity was reserved or reduced, so growing here is
    /// at most the allocator's rounding; if even that cannot be had, it is
    /// charged anyway rather than left uncounted.
    fn settle(&mut self) {
        let capacity = self.bytes.capacity();
        if self.held.resize(capacity).is_err() {
            let more = capacity - self.held.bytes();
            self.held
                .budget
                .large
                .in_use
                .fetch_add(more, Ordering::AcqRel);
            self.held.large += more;
        }
    }
}

impl std::ops::Deref for HeldBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget of its own for each test, so that tests running side by
    /// side (and the client's tests, which use [`RESPONSES`]) do not count
    /// each other's bytes.
    fn budget(small: usize, large: usize) -> &'static Budget {
        Box::leak(Box::new(Budget::new(small, large)))
    }

    #[test]
    fn a_reservation_holds_what_it_asked_and_gives_it_back_on_drop() {
        let budget = budget(SMALL_SHARE, 1 << 20);
        let mut reservation = Reservation::new(budget);
        reservation.resize(100_000).expect("fits");
        assert_eq!((reservation.bytes(), budget.in_use()), (100_000, 100_000));
        reservation.grow(SMALL_SHARE).expect("fits");
        assert_eq!(budget.in_use(), 100_000 + SMALL_SHARE);
        reservation.resize(10).expect("shrinking always succeeds");
        assert_eq!(budget.in_use(), 10);
        drop(reservation);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn an_exhausted_budget_refuses_and_holds_nothing_more() {
        let budget = budget(SMALL_SHARE, (2 << 20) - SMALL_SHARE);
        let mut first = Reservation::new(budget);
        first.resize(budget.limit()).expect("the whole budget");
        let mut second = Reservation::new(budget);
        let refused = second.resize(1).expect_err("nothing is left");
        assert_eq!(refused.limit, budget.limit());
        assert_eq!(
            refused.to_string(),
            "the harness holds at most 2 MiB of responses at once"
        );
        assert_eq!((second.bytes(), budget.in_use()), (0, budget.limit()));
        // What one gives back, the other can have, from either share.
        first.resize(budget.limit() - 1).expect("shrinking");
        second.resize(1).expect("one byte came free");
        assert!(second.grow(1).is_err());
        first.resize(0).expect("shrinking");
        second.resize(budget.limit()).expect("all of it came free");
    }

    #[test]
    fn a_refused_growth_takes_nothing_from_either_share() {
        let budget = budget(SMALL_SHARE, 1 << 20);
        let mut reservation = Reservation::new(budget);
        // Half from the small share, the rest more than the large one has.
        assert!(reservation.resize(SMALL_SHARE + (2 << 20)).is_err());
        assert_eq!((reservation.bytes(), budget.in_use()), (0, 0));
    }

    #[test]
    fn the_small_share_still_answers_while_the_large_one_is_spent() {
        let budget = budget(2 * SMALL_SHARE, 1 << 20);
        let mut hog = Reservation::new(budget);
        // The hog takes its small share and the whole large one ...
        hog.resize(SMALL_SHARE + (1 << 20)).expect("fits");
        assert!(hog.grow(1).is_err());
        // ... and another connection still gets its small share, no more.
        let mut plain = Reservation::new(budget);
        plain
            .resize(SMALL_SHARE)
            .expect("the small share is its own");
        assert!(plain.grow(1).is_err());
    }

    #[test]
    fn the_large_share_stands_in_when_the_small_one_is_spent() {
        let budget = budget(SMALL_SHARE, 1 << 20);
        let mut first = Reservation::new(budget);
        first.resize(SMALL_SHARE).expect("the small share");
        let mut second = Reservation::new(budget);
        second.resize(1000).expect("from the large share");
        assert_eq!(budget.in_use(), SMALL_SHARE + 1000);
        drop(second);
        assert_eq!(budget.large.in_use.load(Ordering::Acquire), 0);
    }

    #[test]
    fn absorbing_moves_the_bytes_without_changing_the_total() {
        let budget = budget(4 * SMALL_SHARE, 1 << 20);
        let mut one = Reservation::new(budget);
        let mut two = Reservation::new(budget);
        one.resize(SMALL_SHARE).expect("fits");
        two.resize(SMALL_SHARE + 10).expect("fits");
        one.absorb(two);
        assert_eq!(one.bytes(), 2 * SMALL_SHARE + 10);
        assert_eq!(budget.in_use(), 2 * SMALL_SHARE + 10);
        drop(one);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.small.in_use.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_held_buffer_charges_its_capacity_and_stops_at_the_budget() {
        let budget = budget(SMALL_SHARE, 1 << 20);
        let mut buf = HeldBuf::new(budget);
        let block = [b'x'; 4096];
        let mut refused = None;
        for _ in 0..1000 {
            if let Err(exhausted) = buf.extend(&block) {
                refused = Some(exhausted);
                break;
            }
            assert!(buf.held() >= buf.len());
            assert_eq!(budget.in_use(), buf.held());
        }
        let refused = refused.expect("4 MB cannot fit in 1.25 MiB");
        assert_eq!(refused.limit, budget.limit());
        assert!(buf.len() <= budget.limit());
        assert!(buf.len() > budget.limit() - block.len(), "{}", buf.len());
        buf.truncate(100);
        assert_eq!((buf.len(), buf.held()), (100, 100));
        buf.release();
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn splitting_a_held_buffer_keeps_every_byte_counted() {
        let budget = budget(SMALL_SHARE, 1 << 20);
        let mut buf = HeldBuf::new(budget);
        buf.extend(&[b'a'; 50_000]).expect("fits");
        buf.extend(b"rest").expect("fits");
        let front = buf.split_front(50_000).expect("fits");
        assert_eq!((front.len(), buf.as_slice()), (50_000, &b"rest"[..]));
        assert_eq!(budget.in_use(), front.held() + buf.held());
        let small = buf.split_front(1).expect("fits");
        assert_eq!((small.as_slice(), buf.as_slice()), (&b"r"[..], &b"est"[..]));
        let (bytes, reservation) = front.into_parts();
        assert_eq!(reservation.bytes(), bytes.capacity());
        drop((bytes, reservation, small, buf));
        assert_eq!(budget.in_use(), 0);
    }
}
