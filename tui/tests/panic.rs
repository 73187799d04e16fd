//! The panic hook `term::init` installs ends the program, also for a panic inside a
//! `tokio::spawn`ed task, which tokio catches (the event loop would otherwise go on
//! drawing on the restored, cooked terminal). One test in its own binary: it replaces
//! the process's panic hook.

use std::sync::Mutex;

use tix_tui::term::panic_hook;

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn seen(what: String) {
    SEEN.lock().unwrap().push(what);
}

#[test]
fn a_panic_in_a_spawned_task_restores_then_exits_101() {
    std::panic::set_hook(panic_hook(
        || seen("undo".into()),
        Box::new(|info| {
            seen(format!(
                "previous: {}",
                info.payload_as_str().unwrap_or("?")
            ))
        }),
        |code| seen(format!("exit {code}")),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let joined = rt.block_on(async { tokio::spawn(async { panic!("boom") }).await });
    let _ = std::panic::take_hook();
    assert!(joined.is_err_and(|e| e.is_panic()), "tokio caught it");
    assert_eq!(
        *SEEN.lock().unwrap(),
        ["undo", "previous: boom", "exit 101"],
        "restored, reported, then the process ends"
    );
}
