//! Choosing the port of a server the harness starts.
//!
//! Binding port 0 asks the kernel for a port from the ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768–60999 by default): the same range
//! that the local port of every outgoing connection on the machine is drawn
//! from. Between the pick and the server's `bind`, any client, the harness's
//! own 64-connection burst included, may get that port as its local end, and
//! then even a server with `SO_REUSEADDR` fails with "Address already in use".
//! On a busy CI machine that is a false startup failure.
//!
//! So ports are drawn from outside the ephemeral range, where no outgoing
//! connection lands, along a walk with a random start and a random stride
//! per process: two servers of one run never get the same port, and two
//! harnesses on one machine do not walk in step.
//! A candidate is taken only when no TCP socket uses it in any state
//! (`/proc/net/tcp`, `tcp6`) and a listener can bind it; a port another
//! process takes after that makes the server fail to bind, and it is started
//! again on another port (see `ServerInstance::start`), or shows up as a
//! startup failure naming the holder,
//! never as a stranger judged in the server's place.

use std::io;
use std::net::{IpAddr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::procfs;

/// The lowest port handed out: below it live the registered services people
/// run on development machines (databases, proxies, 8000, 8080, ...).
const FLOOR: u16 = 10_000;

/// How many candidates one pick tries before it falls back to port 0.
const TRIES: usize = 256;

/// Where the kernel reads the ephemeral range from.
const EPHEMERAL_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// The ephemeral range when it cannot be read (Linux's default).
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32_768..=60_999;

/// Picks made so far by this process.
static PICKS: AtomicUsize = AtomicUsize::new(0);
/// This process's walk through the candidates (see [`next_index`]).
static WALK: OnceLock<(u64, u64)> = OnceLock::new();

/// A port on `ip` that no socket uses now and that lies outside the
/// ephemeral range, or, when no such port is found, one the kernel picks.
pub fn pick(ip: IpAddr) -> io::Result<u16> {
    let candidates = Candidates::outside(ephemeral_range());
    let len = candidates.len();
    pick_from(ip, &candidates, || next_index(len))
}

/// [`pick`] over these candidates, visiting them in the order `next` gives.
fn pick_from(
    ip: IpAddr,
    candidates: &Candidates,
    mut next: impl FnMut() -> usize,
) -> io::Result<u16> {
    if candidates.len() > 0 {
        let in_use = procfs::local_tcp_ports().unwrap_or_default();
        for _ in 0..TRIES {
            let port = candidates.nth(next());
            if !in_use.contains(&port) && TcpListener::bind((ip, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = TcpListener::bind((ip, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The index of this process's next candidate among `len`: step k of its
/// walk, `start + k × stride (mod len)`, the stride coprime with `len`. One
/// process so visits every candidate once before any twice; and two
/// processes, with their own starts and strides, do not walk in step. (With
/// one stride for all, two walks that start close take the same ports one
/// after the other, each just before the other's server binds it.)
fn next_index(len: usize) -> usize {
    let (start, seed) = *WALK.get_or_init(seeds);
    let len = len.max(1) as u128;
    let mut stride = u128::from(seed) % len;
    while stride == 0 || gcd(stride, len) != 1 {
        stride = stride % len + 1;
    }
    let step = PICKS.fetch_add(1, Ordering::Relaxed) as u128;
    ((u128::from(start) + step * stride) % len) as usize
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A start and a stride seed that differ between harness processes run at
/// the same moment (their pids differ) and between runs (the clock moves).
fn seeds() -> (u64, u64) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    // splitmix64 of (pid, nanos): neighbouring inputs give unrelated outputs.
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let first = mix(u64::from(std::process::id()) << 32 | u64::from(nanos));
    (first, mix(first))
}

/// The kernel's ephemeral range, or Linux's default when it cannot be read.
fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string(EPHEMERAL_RANGE)
        .ok()
        .and_then(|text| parse_range(&text))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// `"32768\t60999\n"` → `32768..=60999`.
fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut fields = text.split_whitespace().map(str::parse::<u16>);
    let low = fields.next()?.ok()?;
    let high = fields.next()?.ok()?;
    (low <= high && fields.next().is_none()).then_some(low..=high)
}

/// The ports from [`FLOOR`] to 65535 that are not in the ephemeral range:
/// one run below it and one above it, either possibly empty.
#[derive(Debug, PartialEq)]
struct Candidates {
    below: RangeInclusive<u32>,
    above: RangeInclusive<u32>,
}

impl Candidates {
    fn outside(ephemeral: RangeInclusive<u16>) -> Candidates {
        let (low, high) = (u32::from(*ephemeral.start()), u32::from(*ephemeral.end()));
        Candidates {
            // Empty ranges (start > end) when the ephemeral range reaches
            // down to the floor or up to 65535.
            below: u32::from(FLOOR)..=low.saturating_sub(1),
            above: (high + 1).max(u32::from(FLOOR))..=u32::from(u16::MAX),
        }
    }

    fn run_len(range: &RangeInclusive<u32>) -> usize {
        if range.start() > range.end() {
            0
        } else {
            (range.end() - range.start() + 1) as usize
        }
    }

    fn len(&self) -> usize {
        Self::run_len(&self.below) + Self::run_len(&self.above)
    }

    /// The candidate at `index` (taken modulo their number, which is not 0).
    fn nth(&self, index: usize) -> u16 {
        let index = index % self.len();
        let below = Self::run_len(&self.below);
        let port = if index < below {
            self.below.start() + index as u32
        } else {
            self.above.start() + (index - below) as u32
        };
        port as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn the_kernels_range_parses_and_garbage_does_not() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32_768..=60_999));
        assert_eq!(parse_range("1024 65535"), Some(1024..=65_535));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("32768"), None);
        assert_eq!(parse_range("a b"), None);
        assert_eq!(parse_range("1 2 3"), None);
    }

    #[test]
    fn candidates_avoid_the_ephemeral_range_and_the_floor() {
        let default = Candidates::outside(DEFAULT_EPHEMERAL);
        assert_eq!(default.len(), (32_768 - 10_000) + (65_535 - 60_999));
        for index in 0..default.len() * 2 {
            let port = default.nth(index);
            assert!(port >= FLOOR, "{port}");
            assert!(!DEFAULT_EPHEMERAL.contains(&port), "{port}");
        }
        assert_eq!(default.nth(0), 10_000);
        assert_eq!(default.nth(32_768 - 10_000), 61_000);
        assert_eq!(default.nth(default.len() - 1), 65_535);

        // Everything ephemeral: nothing to draw from (pick falls back to 0).
        assert_eq!(Candidates::outside(1024..=65_535).len(), 0);
        // Only above, only below.
        assert_eq!(Candidates::outside(1024..=60_999).len(), 65_535 - 60_999);
        assert_eq!(Candidates::outside(40_000..=65_535).len(), 30_000);
    }

    #[test]
    fn picks_are_bindable_distinct_and_outside_the_ephemeral_range() {
        let ephemeral = ephemeral_range();
        let outside = Candidates::outside(ephemeral.clone()).len() > 0;
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let port = pick(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("a port");
            assert!(seen.insert(port), "port {port} handed out twice");
            assert!(
                !outside || !ephemeral.contains(&port),
                "{port} is ephemeral"
            );
            TcpListener::bind(("127.0.0.1", port)).expect("the picked port binds");
        }
    }

    #[test]
    fn a_port_in_use_is_passed_over() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let candidates = Candidates::outside(DEFAULT_EPHEMERAL);
        let first = pick_from(ip, &candidates, || next_index(candidates.len())).expect("a port");
        let index = (0..candidates.len())
            .find(|&i| candidates.nth(i) == first)
            .expect("the pick is a candidate");
        let held = TcpListener::bind((ip, first)).expect("holding the port");
        // Visit the held port first: the pick must move past it.
        let mut order = index..;
        let second = pick_from(ip, &candidates, || order.next().unwrap()).expect("a port");
        assert_ne!(second, first);
        drop(held);

        // A connected socket's local port counts as in use too.
        let listener = TcpListener::bind((ip, 0)).expect("a listener");
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let local = client.local_addr().unwrap().port();
        let only = u32::from(local)..=u32::from(local);
        let everything = Candidates {
            below: only.clone(),
            above: only,
        };
        let mut calls = 0;
        let third = pick_from(ip, &everything, || {
            calls += 1;
            0
        })
        .expect("a port");
        assert_ne!(third, local, "a port a client uses was handed out");
        assert_eq!(calls, TRIES, "every try saw the port in use");
    }
}
