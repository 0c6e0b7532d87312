//! The listening socket: `socket → setsockopt(SO_REUSEADDR) → bind → listen`,
//! the first four steps of every TCP server, one syscall each.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    bind, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, SockaddrLike, SockaddrStorage,
};
use nix::sys::time::TimeVal;

use crate::error::ServerError;

/// A bound, listening TCP socket. Dropping it closes the socket.
#[derive(Debug)]
pub struct Listener {
    /// The socket. Owned, so that a child can drop its copy by dropping this.
    fd: OwnedFd,
    /// The address actually bound: with port 0 the kernel picked the port.
    local: SocketAddr,
}

impl Listener {
    /// Creates the socket, binds `addr` and starts listening.
    ///
    /// `reuse_addr` is false only under the `no-reuseaddr` fault.
    pub fn bind(addr: SocketAddr, backlog: i32, reuse_addr: bool) -> Result<Listener, ServerError> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket(family, SockType::Stream, SockFlag::empty(), None)
            .map_err(ServerError::Socket)?;

        // Without SO_REUSEADDR, a server restarted right after it stopped fails
        // with EADDRINUSE: connections it closed linger in TIME_WAIT for a
        // minute and still own the port.
        if reuse_addr {
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|errno| ServerError::SetOption {
                option: "SO_REUSEADDR",
                errno,
            })?;
        }

        let bound = match addr {
            SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4)),
            SocketAddr::V6(v6) => {
                // An IPv6 listener on [::] would otherwise also take IPv4
                // traffic on some systems; say exactly what we bind.
                setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(|errno| {
                    ServerError::SetOption {
                        option: "IPV6_V6ONLY",
                        errno,
                    }
                })?;
                bind(fd.as_raw_fd(), &SockaddrIn6::from(v6))
            }
        };
        bound.map_err(|errno| ServerError::Bind { addr, errno })?;

        let backlog = Backlog::new(backlog).map_err(ServerError::Listen)?;
        listen(&fd, backlog).map_err(ServerError::Listen)?;

        // Non-blocking, so the accept loop can take every queued connection
        // and stop at EAGAIN. Accepted sockets do not inherit the flag.
        let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(ServerError::Listen)?;
        fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(ServerError::Listen)?;

        let local = local_addr(fd.as_raw_fd()).map_err(ServerError::LocalAddr)?;
        Ok(Listener { fd, local })
    }

    /// Sets the options every client socket needs on the listener instead,
    /// once: Linux creates each accepted socket as a copy of the listener's,
    /// options included, which saves two system calls per connection.
    ///
    /// - `TCP_NODELAY`: responses to pipelined requests go out one write
    ///   each; with Nagle's algorithm the second waits for the client's
    ///   delayed ACK of the first (40 ms).
    /// - `SO_SNDTIMEO`: every write is bounded, so a client that stops
    ///   reading a large response cannot hold its child forever.
    pub fn set_client_options(&self, send_timeout: Duration) -> Result<(), ServerError> {
        setsockopt(&self.fd, sockopt::TcpNoDelay, &true).map_err(|errno| {
            ServerError::SetOption {
                option: "TCP_NODELAY",
                errno,
            }
        })?;
        let timeout = TimeVal::from(libc::timeval {
            tv_sec: send_timeout.as_secs() as libc::time_t,
            tv_usec: send_timeout.subsec_micros() as libc::suseconds_t,
        });
        setsockopt(&self.fd, sockopt::SendTimeout, &timeout).map_err(|errno| {
            ServerError::SetOption {
                option: "SO_SNDTIMEO",
                errno,
            }
        })
    }

    /// accept(2): the next queued connection and the client's address, which
    /// accept hands over anyway (no getpeername needed later). EAGAIN when
    /// none is queued, EINTR when a signal came first.
    pub fn accept(&self) -> nix::Result<(OwnedFd, SocketAddr)> {
        // SAFETY: zeroed bytes are a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: storage and len are valid for writes of len bytes; the
        // listener's descriptor is open while self lives.
        let fd = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
                0,
            )
        };
        let fd = Errno::result(fd)?;
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let client = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the kernel wrote a socket address of len bytes to storage.
        let peer = unsafe {
            SockaddrStorage::from_raw(
                (&storage as *const libc::sockaddr_storage).cast(),
                Some(len),
            )
        };
        let peer = peer
            .as_ref()
            .and_then(to_std)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok((client, peer))
    }

    /// The bound address, with the real port.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The raw descriptor, for poll and accept.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// getsockname(2) as a std address.
pub fn local_addr(fd: RawFd) -> nix::Result<SocketAddr> {
    let storage: SockaddrStorage = getsockname(fd)?;
    to_std(&storage).ok_or(Errno::EAFNOSUPPORT)
}

fn to_std(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        Some(SocketAddr::V4((*v4).into()))
    } else {
        storage
            .as_sockaddr_in6()
            .map(|v6| SocketAddr::V6((*v6).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_real_port() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        assert_ne!(listener.local_addr().port(), 0);
        std::net::TcpStream::connect(listener.local_addr()).unwrap();
    }

    #[test]
    fn a_taken_port_is_a_bind_error_naming_the_address() {
        let first = Listener::bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        let err = Listener::bind(first.local_addr(), 16, true).unwrap_err();
        assert!(
            err.to_string().contains(&first.local_addr().to_string()),
            "{err}"
        );
    }

    /// The design rests on Linux copying the listener's options into each
    /// accepted socket: if it stopped, pipelined responses would stall and
    /// writes would be unbounded, so this is checked, not assumed.
    #[test]
    fn accepted_sockets_inherit_the_client_options_and_name_their_peer() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        listener
            .set_client_options(Duration::from_millis(2500))
            .unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr()).unwrap();
        let accepted = loop {
            match listener.accept() {
                Ok(accepted) => break accepted,
                Err(Errno::EAGAIN | Errno::EINTR) => std::thread::yield_now(),
                Err(errno) => panic!("accept: {errno}"),
            }
        };
        let (fd, peer) = accepted;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(nix::sys::socket::getsockopt(&fd, sockopt::TcpNoDelay).unwrap());
        let timeout = nix::sys::socket::getsockopt(&fd, sockopt::SendTimeout).unwrap();
        assert_eq!(
            (timeout.tv_sec(), timeout.tv_usec()),
            (2, 500_000),
            "SO_SNDTIMEO of the accepted socket"
        );
    }
}
