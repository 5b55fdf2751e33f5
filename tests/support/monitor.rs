//! Captured commands: a MONITOR connection that collects the script
//! calls a server ran, and their delivery again, as late copies of them
//! would arrive (the late-copy attacks replay them after newer holds).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::RedisServer;

/// One captured command: its arguments, the command name first.
pub type Command = Vec<Vec<u8>>;

/// A MONITOR connection: every command the server runs, with its exact
/// arguments.
pub struct Monitor {
    reader: BufReader<TcpStream>,
    next_marker: u64,
}

impl Monitor {
    pub fn start(server: &RedisServer) -> Monitor {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "MONITOR answered {line:?}");
        Monitor {
            reader,
            next_marker: 0,
        }
    }

    /// The script calls (EVALSHA) the server ran since the last call;
    /// `admin` sends a marker to know where "now" is in the stream.
    pub fn script_calls_since(&mut self, admin: &mut redis::Connection) -> Vec<Command> {
        self.next_marker += 1;
        let marker = format!("support-monitor-marker-{}", self.next_marker);
        let _: String = redis::cmd("ECHO").arg(&marker).query(admin).unwrap();
        let mut calls = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(read > 0, "the MONITOR connection closed");
            let args = parse_monitor_line(&line);
            match args.first().map(|a| a.to_ascii_uppercase()) {
                Some(name)
                    if name == b"ECHO" && args.get(1) == Some(&marker.as_bytes().to_vec()) =>
                {
                    return calls
                }
                Some(name) if name == b"EVALSHA" => calls.push(args),
                _ => {}
            }
        }
    }
}

/// The quoted arguments of one MONITOR line (`+<time> [db addr] "A" "B"`),
/// unescaped (Redis writes them with sdscatrepr).
pub fn parse_monitor_line(line: &[u8]) -> Vec<Vec<u8>> {
    let start = line
        .iter()
        .position(|&b| b == b']')
        .map_or(line.len(), |p| p + 1);
    let mut args = Vec::new();
    let mut i = start;
    while i < line.len() {
        if line[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let mut arg = Vec::new();
        while i < line.len() && line[i] != b'"' {
            if line[i] == b'\\' && i + 1 < line.len() {
                i += 1;
                match line[i] {
                    b'n' => arg.push(b'\n'),
                    b'r' => arg.push(b'\r'),
                    b't' => arg.push(b'\t'),
                    b'a' => arg.push(7),
                    b'b' => arg.push(8),
                    b'x' if i + 2 < line.len() => {
                        let hex = std::str::from_utf8(&line[i + 1..i + 3]).unwrap_or("00");
                        arg.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                        i += 2;
                    }
                    other => arg.push(other),
                }
            } else {
                arg.push(line[i]);
            }
            i += 1;
        }
        args.push(arg);
        i += 1;
    }
    args
}

/// Delivers a captured command again, as a late copy would arrive; its
/// reply (Nil when the command failed), for the tests that look at it.
pub fn deliver(admin: &mut redis::Connection, command: &Command) -> redis::Value {
    let mut cmd = redis::cmd(std::str::from_utf8(&command[0]).unwrap());
    for arg in &command[1..] {
        cmd.arg(arg.as_slice());
    }
    cmd.query(admin).unwrap_or(redis::Value::Nil)
}
