//! A keep-alive HTTP/1.1 client over one TCP socket, for load sent to `board` processes:
//! one request at a time, as a browser's connection or a proxy's upstream connection
//! carries them, so that a figure does not pay for a new connection per request.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct KeepAlive {
    socket: BufReader<TcpStream>,
    host: String,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl KeepAlive {
    pub async fn connect(address: SocketAddr) -> io::Result<Self> {
        let socket = TcpStream::connect(address).await?;
        socket.set_nodelay(true)?;
        Ok(Self {
            socket: BufReader::new(socket),
            host: address.to_string(),
        })
    }

    /// Sends one request and reads its whole answer: the status and the body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        json: Option<&str>,
    ) -> io::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(token) = bearer {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = json.unwrap_or("");
        if json.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.socket.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;

        let mut line = String::new();
        self.socket.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("not an HTTP status line: {line:?}")))?;
        let mut length = None;
        loop {
            line.clear();
            if self.socket.read_line(&mut line).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        // Board answers every request of a benchmark with a Content-Length (no chunked
        // bodies outside the live streams), so anything else is a surprise worth a stop.
        let length = match (status, length) {
            (204 | 304, _) => 0,
            (_, Some(length)) => length,
            (_, None) => return Err(invalid(format!("{status} without Content-Length"))),
        };
        let mut body = vec![0; length];
        self.socket.read_exact(&mut body).await?;
        Ok((status, body))
    }
}
