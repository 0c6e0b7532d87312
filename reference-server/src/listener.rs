//! The listening socket: `socket → setsockopt(SO_REUSEADDR) → bind → listen`,
//! the first four steps of every TCP server, one syscall each.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    bind, getsockname, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag,
    SockType, SockaddrIn, SockaddrIn6, SockaddrStorage,
};

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
    to_std(&storage).ok_or(nix::errno::Errno::EAFNOSUPPORT)
}

/// getpeername(2) as a std address.
pub fn peer_addr(fd: RawFd) -> nix::Result<SocketAddr> {
    let storage: SockaddrStorage = nix::sys::socket::getpeername(fd)?;
    to_std(&storage).ok_or(nix::errno::Errno::EAFNOSUPPORT)
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
}
