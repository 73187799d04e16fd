//! The correlation id: the `x-request-id` of the HTTP request that started a piece of
//! work, carried into every event that work publishes (`correlationId` in the envelope)
//! and on into the events consumers publish while applying them. One id then finds a
//! purchase in every service's log and in `tix events tail`.
//!
//! A request's id is in scope for its handler (a task-local, set by [`crate::http`]'s
//! layers). Writes run on the database's writer thread, so [`crate::db::Db::write`] takes
//! the id along and sets it there for the job ([`on_this_thread`]); the inbox does the same
//! with an applied event's id. [`crate::outbox::enqueue`] reads it from either.

use std::cell::RefCell;
use std::future::Future;

use http::HeaderValue;

/// A correlation id: the request's header value itself, so carrying it costs no copy.
pub type Id = HeaderValue;

tokio::task_local! {
    static REQUEST: Option<Id>;
}

thread_local! {
    static THREAD: RefCell<Option<Id>> = const { RefCell::new(None) };
}

/// The longest id taken from a request: anything longer is not one of ours or a proxy's.
pub const MAX_LEN: usize = 128;

/// Whether `id` may be used as a correlation id: short, and only characters that need no
/// quoting in a log line (letters, digits, `-`, `_`, `.`, `:`).
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// An id from text (an event's `correlationId`), if it is a valid one.
pub fn from_text(id: &str) -> Option<Id> {
    is_valid(id)
        .then(|| HeaderValue::from_str(id).ok())
        .flatten()
}

/// The correlation id of the work running here, if any.
pub fn current() -> Option<Id> {
    REQUEST
        .try_with(|id| id.clone())
        .ok()
        .flatten()
        .or_else(|| THREAD.with(|t| t.borrow().clone()))
}

/// `fut`, run with `id` as the correlation id of everything it does on this task. The
/// wrapper is polled in place (no allocation), so the HTTP layer can use it per request.
pub fn scope<F: Future>(
    id: Option<Id>,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<Option<Id>, F> {
    REQUEST.scope(id, fut)
}

/// Runs `f` with `id` as this thread's correlation id (the writer thread, for one job).
pub fn on_this_thread<T>(id: Option<Id>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Id>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD.with(|t| *t.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(THREAD.with(|t| t.replace(id)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_id_is_seen_in_its_scope_and_on_its_thread_only() {
        assert_eq!(current(), None);
        let id = from_text("req-1").unwrap();
        scope(Some(id.clone()), async {
            assert_eq!(current(), Some(id.clone()));
        })
        .await;
        assert_eq!(current(), None);
        let evt = from_text("evt-2").unwrap();
        on_this_thread(Some(evt.clone()), || {
            assert_eq!(current(), Some(evt.clone()));
            on_this_thread(None, || assert_eq!(current(), None));
            assert_eq!(current(), Some(evt.clone()));
        });
        assert_eq!(current(), None);
        assert_eq!(from_text("a b"), None);
    }

    #[test]
    fn only_short_plain_ids_are_taken() {
        assert!(is_valid("0193a5c2-7f7e-7cc0-9a2e-4c1d2b3a4f5e"));
        assert!(!is_valid(""));
        assert!(!is_valid("a b"));
        assert!(!is_valid("x\n{\"level\":\"ERROR\"}"));
        assert!(!is_valid(&"a".repeat(MAX_LEN + 1)));
    }
}
