//! `threatwatch healthcheck`: asks a running instance whether it is ready,
//! for container health checks on an image that has no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Shorter than any sensible health-check interval, longer than `/readyz`
/// takes to give up on the database itself.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Enough for the status line and the short body `/readyz` sends.
const MAX_ANSWER_BYTES: u64 = 4096;

/// Succeeds when `GET /readyz` on `addr` answers 200. An instance bound to
/// every interface (`0.0.0.0`, `::`) is asked on the loopback address.
pub async fn readyz(addr: SocketAddr) -> anyhow::Result<()> {
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let answer = tokio::time::timeout(PROBE_TIMEOUT, ask(addr))
        .await
        .map_err(|_| {
            anyhow::anyhow!("no answer from http://{addr}/readyz within {PROBE_TIMEOUT:?}")
        })?
        .map_err(|e| anyhow::anyhow!("http://{addr}/readyz: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        return Ok(());
    }
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    anyhow::bail!("http://{addr}/readyz answered {status:?}: {body}")
}

async fn ask(addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut answer)
        .await?;
    Ok(answer)
}
