//! A real, minimal SMTP server on a loopback port, for tests that must see
//! what the notifier actually sends.
//!
//! It speaks enough of RFC 5321 for lettre and other clients (EHLO/HELO,
//! AUTH PLAIN/LOGIN accepting anything, MAIL FROM, RCPT TO, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT), records each message with its
//! envelope and a best-effort decoding of subject (RFC 2047) and body
//! (quoted-printable, base64), and can refuse recipients on request. It
//! must not be used outside tests: no TLS, no real authentication, no
//! relaying. It stops when dropped.

use std::{collections::VecDeque, net::SocketAddr, sync::Arc, sync::Mutex, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::{JoinHandle, JoinSet},
};

/// What can go wrong in a test with the receiver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fewer messages arrived than awaited.
    #[error("timed out after {timeout:?} waiting for {wanted} messages; got {got}")]
    Timeout {
        /// How many were awaited.
        wanted: usize,
        /// How many came.
        got: usize,
        /// How long it waited.
        timeout: Duration,
    },
    /// The listener could not be bound.
    #[error("cannot bind the SMTP receiver: {0}")]
    Bind(#[from] std::io::Error),
}

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (MAIL FROM), without angle brackets.
    pub mail_from: String,
    /// The envelope recipients (RCPT TO), without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF kept.
    pub data: String,
    /// Header fields in order, unfolded, values still encoded.
    pub headers: Vec<(String, String)>,
    /// The Subject, RFC 2047 words decoded.
    pub subject: String,
    /// The body, transfer encoding undone, line ends as `\n`.
    pub body: String,
    /// The user name given with AUTH, if the client authenticated.
    pub auth_user: Option<String>,
}

impl ReceivedMail {
    /// The first header of that name (case-insensitive), still encoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    messages: watch::Sender<Vec<ReceivedMail>>,
    /// Reply codes for the next RCPT commands, in order.
    refusals: Mutex<VecDeque<u16>>,
}

/// The running server. Dropping it stops it and closes its connections.
pub struct SmtpReceiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection.
        self.task.abort();
    }
}

impl SmtpReceiver {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start() -> Result<SmtpReceiver, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            messages: watch::channel(Vec::new()).0,
            refusals: Mutex::new(VecDeque::new()),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&state)));
        Ok(SmtpReceiver { addr, state, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A relay URL for it: `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Answers the next `n` RCPT commands with `code` (e.g. 550 for a
    /// permanent refusal, 451 for a transient one).
    pub fn refuse_next_recipients(&self, n: usize, code: u16) {
        let mut refusals = self
            .state
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        refusals.extend(std::iter::repeat_n(code, n));
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state.messages.borrow().clone()
    }

    /// Waits until at least `n` messages have arrived, then returns all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<ReceivedMail>, Error> {
        let mut rx = self.state.messages.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|m| m.len() >= n)).await {
            Ok(Ok(messages)) => Ok(messages.clone()),
            _ => Err(Error::Timeout {
                wanted: n,
                got: self.state.messages.borrow().len(),
                timeout,
            }),
        }
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Replies are small writes; without this a delayed ACK
                    // on the other side stalls each command by ~40 ms.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(session(stream, Arc::clone(&state)));
                }
                Err(error) => tracing::warn!(%error, "SMTP receiver: accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The largest message accepted; tests send far less.
const MAX_DATA: usize = 16 * 1024 * 1024;

async fn session(stream: TcpStream, state: Arc<State>) {
    if let Err(error) = converse(stream, &state).await {
        tracing::debug!(%error, "SMTP receiver: connection ended");
    }
}

async fn converse(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(b"220 nisvakt-testkit ESMTP ready\r\n")
        .await?;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut auth_user: Option<String> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-nisvakt-testkit\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                       250-AUTH PLAIN LOGIN\r\n250 OK\r\n"
                .to_owned(),
            "HELO" => "250 nisvakt-testkit\r\n".to_owned(),
            "AUTH" => {
                auth_user = Some(authenticate(&command, &mut read, &mut write).await?);
                "235 2.7.0 Authentication successful\r\n".to_owned()
            }
            "MAIL" => match path_arg(&command, "FROM:") {
                Some(from) => {
                    mail_from = Some(from);
                    rcpt_to.clear();
                    "250 2.1.0 OK\r\n".to_owned()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".to_owned(),
            },
            "RCPT" => {
                let refusal = state
                    .refusals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                match (path_arg(&command, "TO:"), &mail_from, refusal) {
                    (_, None, _) => "503 5.5.1 MAIL first\r\n".to_owned(),
                    (None, _, _) => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".to_owned(),
                    (Some(_), _, Some(code)) => format!("{code} recipient refused by test\r\n"),
                    (Some(to), _, None) => {
                        rcpt_to.push(to);
                        "250 2.1.5 OK\r\n".to_owned()
                    }
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpt_to.is_empty() {
                    "503 5.5.1 RCPT first\r\n".to_owned()
                } else {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let data = read_data(&mut read).await?;
                    let mail = parse_mail(
                        mail_from.take().unwrap_or_default(),
                        std::mem::take(&mut rcpt_to),
                        data,
                        auth_user.clone(),
                    );
                    state.messages.send_modify(|m| m.push(mail));
                    "250 2.0.0 OK queued\r\n".to_owned()
                }
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 2.0.0 OK\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_owned(),
            "VRFY" => "252 2.1.5 Cannot verify\r\n".to_owned(),
            "STARTTLS" => "454 4.7.0 TLS not available in the test receiver\r\n".to_owned(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "500 5.5.2 Command not recognised\r\n".to_owned(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// The address in `MAIL FROM:<a> …` or `RCPT TO:<a> …`.
fn path_arg(command: &str, keyword: &str) -> Option<String> {
    let upper = command.to_ascii_uppercase();
    let at = upper.find(keyword)? + keyword.len();
    let rest = command.get(at..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}

/// Reads DATA up to the lone dot, undoing dot-stuffing.
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<String> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            break;
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        if data.len() + unstuffed.len() > MAX_DATA {
            return Err(std::io::Error::other(
                "message too large for the test receiver",
            ));
        }
        data.extend_from_slice(unstuffed);
    }
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// AUTH PLAIN (inline or after 334) or LOGIN; accepts any credentials and
/// returns the user name.
async fn authenticate(
    command: &str,
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<String> {
    let mut parts = command.split_whitespace().skip(1);
    let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
    let initial = parts.next().map(str::to_owned);
    let mut ask = async |prompt: &[u8]| -> std::io::Result<String> {
        write.write_all(prompt).await?;
        let mut line = Vec::new();
        read.read_until(b'\n', &mut line).await?;
        Ok(String::from_utf8_lossy(&line).trim().to_owned())
    };
    let decoded = |b64: &str| String::from_utf8_lossy(&base64_decode(b64)).into_owned();
    Ok(match mechanism.as_str() {
        "LOGIN" => {
            let user = match initial {
                Some(user) => user,
                None => ask(b"334 VXNlcm5hbWU6\r\n").await?,
            };
            ask(b"334 UGFzc3dvcmQ6\r\n").await?;
            decoded(&user)
        }
        _ => {
            let response = match initial {
                Some(response) => response,
                None => ask(b"334 \r\n").await?,
            };
            // authzid \0 authcid \0 password
            decoded(&response)
                .split('\0')
                .nth(1)
                .unwrap_or_default()
                .to_owned()
        }
    })
}

fn parse_mail(
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
    auth_user: Option<String>,
) -> ReceivedMail {
    let (head, body) = data
        .split_once("\r\n\r\n")
        .or_else(|| data.split_once("\n\n"))
        .unwrap_or((data.as_str(), ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let subject = header("Subject").map(decode_words).unwrap_or_default();
    let encoding = header("Content-Transfer-Encoding")
        .unwrap_or("")
        .to_ascii_lowercase();
    let raw_body = match encoding.as_str() {
        "base64" => base64_decode(body),
        "quoted-printable" => quoted_printable_decode(body),
        _ => body.as_bytes().to_vec(),
    };
    let body = String::from_utf8_lossy(&raw_body).replace("\r\n", "\n");
    ReceivedMail {
        mail_from,
        rcpt_to,
        subject,
        body,
        headers,
        data,
        auth_user,
    }
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`);
/// whitespace between two encoded words is dropped, as the RFC says.
pub fn decode_words(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut pending_space = Vec::new();
    let mut after_word = false;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"=?")
            && let Some((decoded, used)) = encoded_word(&value[i..])
        {
            if !after_word {
                out.append(&mut pending_space);
            }
            pending_space.clear();
            out.extend(decoded);
            after_word = true;
            i += used;
        } else if bytes[i].is_ascii_whitespace() {
            pending_space.push(bytes[i]);
            i += 1;
        } else {
            out.append(&mut pending_space);
            out.push(bytes[i]);
            after_word = false;
            i += 1;
        }
    }
    out.append(&mut pending_space);
    String::from_utf8_lossy(&out).into_owned()
}

/// One encoded word at the start of `s`: its bytes and its length.
fn encoded_word(s: &str) -> Option<(Vec<u8>, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (_charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    let used = s.len() - rest.len() + end + 2;
    let decoded = match encoding {
        "b" | "B" => base64_decode(text),
        "q" | "Q" => quoted_printable_decode(&text.replace('_', " ")),
        _ => return None,
    };
    Some((decoded, used))
}

/// Standard base64, ignoring whitespace and stopping at padding.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        if c == b'=' {
            break;
        }
        let Some(v) = value(c) else { continue };
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Quoted-printable: `=XX` bytes and `=` soft line breaks.
pub fn quoted_printable_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if bytes[i + 1..].starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_and_bodies_decode_to_swedish_text() {
        assert_eq!(
            decode_words("FRISTEN =?utf-8?b?R8OFUg==?= UT NU: Skede 1 =?utf-8?b?4oCT?= Journal"),
            "FRISTEN GÅR UT NU: Skede 1 – Journal"
        );
        assert_eq!(
            decode_words("=?UTF-8?Q?r=C3=A4ttvis?= =?UTF-8?Q?_h=C3=B6g?="),
            "rättvis hög"
        );
        assert_eq!(
            String::from_utf8_lossy(&quoted_printable_decode(
                "S=C3=A4kerhetsenheten =\r\nf=C3=A5r"
            )),
            "Säkerhetsenheten får"
        );
        assert_eq!(
            String::from_utf8_lossy(&base64_decode("w6XDpMO2\r\n")),
            "åäö"
        );
    }

    #[test]
    fn a_message_is_split_into_unfolded_headers_and_a_decoded_body() {
        let data = "Subject: =?utf-8?b?w6XDpMO2?=\r\n =?utf-8?b?w4XDhMOW?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=85tg=C3=A4rda\r\n";
        let mail = parse_mail("a@b".into(), vec!["c@d".into()], data.into(), None);
        assert_eq!(mail.subject, "åäöÅÄÖ");
        assert_eq!(mail.body, "Åtgärda\n");
        assert_eq!(
            mail.header("content-transfer-encoding"),
            Some("quoted-printable")
        );
    }

    #[tokio::test]
    async fn it_speaks_smtp_and_records_the_message() {
        let receiver = SmtpReceiver::start().await.expect("start");
        let stream = TcpStream::connect(receiver.addr()).await.expect("connect");
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut line = String::new();
        let mut expect = async |send: &str, code: &str| {
            if !send.is_empty() {
                write.write_all(send.as_bytes()).await.expect("write");
            }
            loop {
                line.clear();
                read.read_line(&mut line).await.expect("read");
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
            assert!(line.starts_with(code), "{send:?} got {line:?}");
        };
        expect("", "220").await;
        expect("EHLO test\r\n", "250").await;
        expect("NOOP\r\n", "250").await;
        expect("RCPT TO:<x@y>\r\n", "503").await;
        expect(
            "MAIL FROM:<nisvakt@example.invalid> BODY=8BITMIME\r\n",
            "250",
        )
        .await;
        expect("RCPT TO:<chef@example.invalid>\r\n", "250").await;
        expect("DATA\r\n", "354").await;
        expect("Subject: Hej\r\n\r\n..punkt\r\nrad\r\n.\r\n", "250").await;
        expect("RSET\r\n", "250").await;
        expect("QUIT\r\n", "221").await;
        let mail = receiver
            .wait_for(1, Duration::from_secs(5))
            .await
            .expect("one message");
        assert_eq!(mail[0].mail_from, "nisvakt@example.invalid");
        assert_eq!(mail[0].rcpt_to, ["chef@example.invalid"]);
        assert_eq!(mail[0].subject, "Hej");
        assert_eq!(mail[0].body, ".punkt\nrad\n");
        let timeout = receiver.wait_for(2, Duration::from_millis(50)).await;
        assert!(matches!(
            timeout,
            Err(Error::Timeout {
                wanted: 2,
                got: 1,
                ..
            })
        ));
    }
}
