//! `TIX_LOG_FORMAT=json`: one JSON object per line, written straight into the line buffer.
//!
//! The shape is tracing-subscriber's flattened JSON — `timestamp`, `level`, `target`, the
//! event's fields (`message` among them) at the top level, and the innermost span under
//! `span` with its `name` and fields — so `jq` filters and log shippers read either. The
//! built-in formatter keeps each span's fields as a JSON string and parses it again into a
//! value for every line; with an access-log line per request that cost about a third more
//! instructions per point read than text logs (docs/benchmarks.md). Here a span's fields
//! are kept as ready-made JSON members and copied into each line as they are.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The line format.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

/// How fields are kept: JSON object members (`"k":v,"k2":v2`), without braces.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut members = Members::new(&mut writer, true);
        fields.record(&mut members);
        members.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut writer = current.as_writer();
        let mut members = Members::new(&mut writer, first);
        fields.record(&mut members);
        members.result
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut w, time::OffsetDateTime::now_utc())?;
        write!(w, "\",\"level\":\"{}\",\"target\":", meta.level())?;
        write_str(&mut w, meta.target())?;
        let mut members = Members::new(&mut w, false);
        event.record(&mut members);
        members.result?;
        if let Some(span) = ctx.event_scope().and_then(|mut scope| scope.next()) {
            w.write_str(",\"span\":{\"name\":")?;
            write_str(&mut w, span.name())?;
            let ext = span.extensions();
            if let Some(fields) = ext.get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                w.write_char(',')?;
                w.write_str(fields)?;
            }
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

/// Writes fields as `"name":value` members, comma-separated (`first`: no comma before the
/// first one).
struct Members<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> Members<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Members {
            out,
            first,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        // Fields that tracing-log adds for `log` records say again what the line has.
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.out.write_char(',')?;
            }
            self.first = false;
            write_str(self.out, name)?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| write_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are written as strings.
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            self.member(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value}")?;
            w.write_char('"')
        });
    }
}

/// `s` as a JSON string, quotes included.
fn write_str<W: Write + ?Sized>(w: &mut W, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for the inside of a JSON string.
struct Escaped<'a, W: Write + ?Sized>(&'a mut W);

impl<W: Write + ?Sized> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape: Option<&str> = match b {
                b'"' => Some("\\\""),
                b'\\' => Some("\\\\"),
                b'\n' => Some("\\n"),
                b'\r' => Some("\\r"),
                b'\t' => Some("\\t"),
                0..=0x1f | 0x7f => None,
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            match escape {
                Some(e) => self.0.write_str(e)?,
                None => write!(self.0, "\\u{b:04x}")?,
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

/// `2026-11-26T12:00:01.234567Z`, written without a temporary string.
fn write_timestamp<W: Write>(w: &mut W, t: time::OffsetDateTime) -> fmt::Result {
    write!(
        w,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug
    struct Odd {
        text: &'static str,
    }

    #[test]
    fn every_line_is_one_json_object_whatever_the_fields_hold() {
        let out = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        let nasty =
            "quote \" backslash \\ newline \n tab \t nul \u{0} del \u{7f} bidi \u{202e} emoji 🎟";
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("request", method = "GET", uri = nasty, request_id = "r-1");
            let _in = span.enter();
            span.record("uri", "/api/tickets");
            tracing::info!(n = 3u64, neg = -2i64, ok = true, ratio = 0.5, inf = f64::INFINITY, odd = ?Odd { text: nasty }, "hello {}", nasty);
            tracing::warn!("outside fields");
            drop(_in);
            tracing::error!(error = %std::io::Error::other(nasty), "no span");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["message"], format!("hello {nasty}"));
        assert_eq!(first["n"], 3);
        assert_eq!(first["neg"], -2);
        assert_eq!(first["ok"], true);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["inf"], "inf");
        assert_eq!(first["odd"], format!("{:?}", Odd { text: nasty }));
        assert_eq!(first["span"]["name"], "request");
        assert_eq!(first["span"]["request_id"], "r-1");
        assert_eq!(first["span"]["method"], "GET");
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["message"], "outside fields");
        assert!(lines[2].get("span").is_none());
        assert_eq!(lines[2]["error"], nasty);
    }
}
