//! `tix-tui`: terminal setup, the event loop, and the effects run in background tasks.

use std::time::Duration;

use clap::Parser;
use ratatui::crossterm::event::{self, Event, KeyEventKind, MouseEventKind};
use tix_client::session::{self, Session};
use tix_client::{ApiClient, ClientError, Kind};
use tix_tui::app::{self, Action, App, Effect, Page, Problem, User};
use tix_tui::cli::Cli;
use tokio::sync::mpsc;

fn problem(e: ClientError) -> Problem {
    let kind = e.kind();
    let (message, field) = match e {
        ClientError::Api { message, field, .. } => (message, field),
        ClientError::Unreachable { url, .. } => (
            format!("cannot reach {url}: is the stack running? (scripts/stack up)"),
            None,
        ),
        other => (other.to_string(), None),
    };
    Problem {
        message,
        field,
        kind,
    }
}

/// Runs one effect and reports back as an action.
async fn perform(client: ApiClient, effect: Effect) -> Option<Action> {
    fn p<T>(r: Result<T, ClientError>) -> Result<T, Problem> {
        r.map_err(problem)
    }
    Some(match effect {
        Effect::SignIn {
            email,
            password,
            new,
            display_name,
        } => {
            let r = if new {
                client
                    .signup(&email, &password, display_name.as_deref())
                    .await
            } else {
                client.signin(&email, &password).await
            };
            Action::SignedIn(p(r))
        }
        Effect::LoadTickets {
            search,
            offset,
            limit,
        } => {
            let q = tix_client::TicketQuery {
                search: (!search.is_empty()).then(|| search.clone()),
                limit: Some(limit),
                offset: Some(offset),
                ..Default::default()
            };
            let result = p(client.tickets(&q).await);
            Action::Tickets {
                search,
                page: Page {
                    offset,
                    limit,
                    result,
                },
            }
        }
        Effect::LoadMyTickets { offset, limit } => {
            let q = tix_client::TicketQuery {
                mine: true,
                limit: Some(limit),
                offset: Some(offset),
                ..Default::default()
            };
            let result = p(client.tickets(&q).await);
            Action::MyTickets(Page {
                offset,
                limit,
                result,
            })
        }
        Effect::LoadSales { offset, limit } => {
            let result = p(client.sales(Some(limit), Some(offset)).await);
            Action::Sales(Page {
                offset,
                limit,
                result,
            })
        }
        Effect::LoadOrders => Action::Orders(p(client.orders().await)),
        Effect::LoadPayments => Action::Payments(p(client.payments().await)),
        Effect::LoadTicket(id) => Action::Ticket(p(client.ticket(&id).await)),
        Effect::Reserve(id) => Action::Reserved(p(client.create_order(&id).await)),
        Effect::Pay { order_id, token } => Action::Paid(p(client.pay(&order_id, &token).await)),
        Effect::LoadOrder(id) => Action::OrderNow(p(client.order(&id).await)),
        Effect::CreateTicket { title, price } => {
            Action::Saved(p(client.create_ticket(&title, price).await))
        }
        Effect::UpdateTicket { id, title, price } => {
            Action::Saved(p(client.update_ticket(&id, &title, price).await))
        }
        Effect::CancelOrder(id) => {
            Action::Cancelled(p(client.cancel_order(&id).await.map(|()| id)))
        }
        Effect::SaveSession(_) | Effect::OpenOps => return None,
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.print_docs(&mut std::io::stdout().lock())? {
        return Ok(());
    }
    let theme = cli.theme();
    anyhow::ensure!(
        session::valid_profile(&cli.profile),
        "a profile name is letters, digits, - and _"
    );
    let dir = session::config_dir();
    let mut saved = Session::load(&dir, &cli.profile);
    let api = cli
        .api
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.api.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // A token past half its life is renewed before the screens start, as `tix` does.
    if let Some(s) = saved.as_mut() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if s.needs_renewal(now)
            && let Ok(fresh) = rt.block_on(ApiClient::new(&api, Some(s.token.clone())).renew())
        {
            s.renewed(fresh.token);
            let _ = s.save(&dir, &cli.profile);
        }
    }
    let ops = cli.ops_config(&api);
    let mut terminal = tix_tui::term::init()?;
    let result = if cli.ops {
        rt.block_on(async {
            let mut input = tix_tui::ops::spawn_input();
            tix_tui::ops::run(&mut terminal, &ops, &theme, &mut input).await
        })
    } else {
        rt.block_on(run(
            &mut terminal,
            &api,
            &dir,
            &cli.profile,
            saved,
            theme,
            &ops,
        ))
    };
    tix_tui::term::restore();
    result
}

/// The operations screen over the app, fed by the app's own input until it is left;
/// whatever else arrives meanwhile (ticks) is dropped, answers to requests wait.
async fn show_ops(
    terminal: &mut tix_tui::term::Term,
    cfg: &tix_tui::ops::Config,
    theme: &tix_tui::widgets::theme::Theme,
    rx: &mut mpsc::UnboundedReceiver<Action>,
) -> anyhow::Result<()> {
    use tix_tui::ops::Input;
    let (input_tx, mut input) = mpsc::unbounded_channel();
    let screen = tix_tui::ops::run(terminal, cfg, theme, &mut input);
    tokio::pin!(screen);
    loop {
        tokio::select! {
            r = &mut screen => return r,
            Some(a) = rx.recv() => {
                let i = match a {
                    Action::Key(k) => Input::Key(k),
                    Action::Mouse(m) => match m.kind {
                        MouseEventKind::ScrollUp => Input::Wheel { up: true },
                        MouseEventKind::ScrollDown => Input::Wheel { up: false },
                        _ => continue,
                    },
                    Action::Resize => Input::Resize,
                    _ => continue,
                };
                let _ = input_tx.send(i);
            }
        }
    }
}

async fn run(
    terminal: &mut tix_tui::term::Term,
    api: &str,
    dir: &std::path::Path,
    profile: &str,
    saved: Option<Session>,
    theme: tix_tui::widgets::theme::Theme,
    ops: &tix_tui::ops::Config,
) -> anyhow::Result<()> {
    let mut token = saved.as_ref().map(|s| s.token.clone());
    let user = saved.as_ref().map(|s| User {
        email: s.email.clone(),
        id: s.user_id.clone(),
    });
    let mut app = App::new(api, user, time::OffsetDateTime::now_utc());
    app.theme = theme;
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();

    // Input comes from a blocking reader thread, so drawing never waits for it.
    let keys = tx.clone();
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(250)) {
                Ok(true) => {
                    let action = match event::read() {
                        Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => Action::Key(k),
                        // Moves and drags would redraw for nothing.
                        Ok(Event::Mouse(m))
                            if !matches!(
                                m.kind,
                                MouseEventKind::Moved | MouseEventKind::Drag(_)
                            ) =>
                        {
                            Action::Mouse(m)
                        }
                        Ok(Event::Paste(text)) => Action::Paste(text),
                        Ok(Event::Resize(..)) => Action::Resize,
                        Ok(_) => continue,
                        Err(_) => break,
                    };
                    if keys.send(action).is_err() {
                        break;
                    }
                }
                Ok(false) => {
                    if keys.is_closed() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    let ticks = tx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            if ticks
                .send(Action::Tick(time::OffsetDateTime::now_utc()))
                .is_err()
            {
                break;
            }
        }
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Action>();
    let mut pending = app.start();
    loop {
        let mut open_ops = false;
        for effect in pending.drain(..) {
            if let Effect::OpenOps = effect {
                open_ops = true;
                continue;
            }
            if let Effect::SaveSession(who) = &effect {
                token = Some(who.token.clone());
                let s = Session {
                    api: api.to_string(),
                    email: who.email.clone(),
                    user_id: who.id.clone(),
                    token: who.token.clone(),
                    at_end: false,
                };
                if let Err(e) = s.save(dir, profile) {
                    app.last_error = Some(format!("could not save the session: {e}"));
                }
                continue;
            }
            app.busy += 1;
            let client = ApiClient::new(api, token.clone());
            let done = done_tx.clone();
            tokio::spawn(async move {
                if let Some(a) = perform(client, effect).await {
                    let _ = done.send(a);
                } else {
                    let _ = done.send(Action::Tick(time::OffsetDateTime::now_utc()));
                }
            });
        }
        if open_ops {
            show_ops(terminal, ops, &app.theme, &mut rx).await?;
            terminal.clear()?;
        }
        terminal.draw(|f| tix_tui::ui::render(f, &app))?;
        if app.quit {
            return Ok(());
        }
        let action = tokio::select! {
            Some(a) = rx.recv() => a,
            Some(a) = done_rx.recv() => {
                app.busy = app.busy.saturating_sub(1);
                let expired = match &a {
                    Action::SignedIn(Err(p)) => p.kind == Kind::NotSignedIn,
                    Action::Tickets { page, .. } => {
                        page.result.as_ref().is_err_and(|p| p.kind == Kind::NotSignedIn)
                    }
                    _ => false,
                };
                if expired {
                    token = None;
                }
                a
            }
        };
        pending = app::update(&mut app, action);
    }
}
