//! Drawing the operations screen: processes across the top, event rates as sparklines
//! and the groups side by side, the latest events below. On a narrow terminal the panels
//! stack and each shows what fits.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, Wrap};

use super::model::{Ops, ProcessState, TailState};
use crate::widgets::clean;
use crate::widgets::theme::Theme;

/// The keys of this screen, shown in its footer and in the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("q/Esc", "back"),
    ("p", "pause"),
    ("↑↓ PgUp PgDn", "scroll events"),
    ("End", "follow"),
];

pub fn render(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    if area.height < 20 || area.width < 60 {
        return render_compact(f, area, ops, theme);
    }
    let wide = area.width >= 80;
    let [title, procs, middle, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(process_height(ops, area.width)),
        Constraint::Min(if wide { 8 } else { 4 }),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);

    render_title(f, title, ops, theme);
    render_processes(f, procs, ops, theme);
    if wide {
        let [rates, groups] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                .areas(middle);
        render_rates(f, rates, ops, theme);
        render_groups(f, groups, ops, theme);
    } else {
        let [rates, groups] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(middle);
        render_rates(f, rates, ops, theme);
        render_groups(f, groups, ops, theme);
    }
    render_events(f, events, ops, theme);
    render_footer(f, footer, theme);
}

fn render_title(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    let paused = if ops.paused { "  [paused]" } else { "" };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" tix ops ", theme.brand),
            Span::raw(format!(
                " {} ev/s · {} clients{paused}",
                ops.total_rate(),
                ops.clients.map_or("?".into(), |c| c.to_string())
            )),
        ])),
        area,
    );
}

fn render_footer(f: &mut Frame, area: Rect, theme: &Theme) {
    let keys: Vec<Span> = KEYS
        .iter()
        .flat_map(|(k, what)| {
            [
                Span::styled(*k, theme.key),
                Span::styled(format!(" {what}  "), theme.dim),
            ]
        })
        .collect();
    f.render_widget(Paragraph::new(Line::from(keys)), area);
}

/// A small terminal: no borders, a heading line per section, at most two subjects and
/// two groups (the busiest and the ones with trouble first), the newest events below.
fn render_compact(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    let procs = Paragraph::new(process_line(ops, theme)).wrap(Wrap { trim: true });
    let proc_lines = (procs.line_count(area.width) as u16).clamp(1, 2);
    let subjects = ops.subjects.len().clamp(1, 2) as u16;
    let groups = ops.groups.len().clamp(1, 2) as u16;
    let [title, p, rates, groups_area, events, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(proc_lines),
        Constraint::Length(subjects + 1),
        Constraint::Length(groups + 1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_title(f, title, ops, theme);
    f.render_widget(procs, p);

    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(rates);
    f.render_widget(
        Paragraph::new("Events per second").style(theme.header),
        head,
    );
    let mut busiest: Vec<_> = ops.subjects.iter().collect();
    busiest.sort_by_key(|(_, s)| std::cmp::Reverse(s.rates.back().copied().unwrap_or(0)));
    rate_rows(f, body, &busiest, ops, theme);

    let [head, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(groups_area);
    f.render_widget(
        Paragraph::new("Groups    lag pending dead").style(theme.header),
        head,
    );
    let mut troubled: Vec<_> = ops.groups.iter().collect();
    troubled.sort_by_key(|(_, g)| std::cmp::Reverse((g.dead, g.lag)));
    let lines: Vec<Line> = troubled
        .iter()
        .map(|(name, g)| {
            let dead = if g.dead > 0 {
                theme.error
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::raw(format!(
                    "{:<9} {:>3} {:>7} ",
                    truncate(&clean(name), 9),
                    g.lag,
                    g.pending
                )),
                Span::styled(format!("{:>4}", g.dead), dead),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(lines), body);

    let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(events);
    f.render_widget(Paragraph::new("Latest events").style(theme.header), head);
    event_lines(f, body, ops, theme);
    render_footer(f, footer, theme);
}

fn process_height(ops: &Ops, width: u16) -> u16 {
    let text: usize = ops
        .processes
        .iter()
        .map(|p| p.name.len() + 4)
        .sum::<usize>()
        + ops.readiness_error.as_ref().map_or(0, |e| e.len() + 2);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    (text.div_ceil(inner).max(1) as u16).min(4) + 2
}

fn render_processes(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    f.render_widget(
        Paragraph::new(process_line(ops, theme))
            .wrap(Wrap { trim: true })
            .block(panel(" Processes ", theme)),
        area,
    );
}

fn process_line(ops: &Ops, theme: &Theme) -> Line<'static> {
    let mut spans = Vec::new();
    if ops.processes.is_empty() && ops.readiness_error.is_none() {
        spans.push(Span::styled("asking the gateway…", theme.dim));
    }
    for p in &ops.processes {
        let (mark, style, note) = match &p.state {
            ProcessState::Ready => ("●", theme.ok, String::new()),
            ProcessState::NotReady(why) => ("◐", theme.error, format!(" ({})", clean(why))),
            ProcessState::Down => ("○", theme.error, " (down)".into()),
            ProcessState::Unknown => ("?", theme.dim, String::new()),
        };
        spans.push(Span::styled(format!("{mark} "), style));
        spans.push(Span::raw(clean(&p.name).into_owned()));
        spans.push(Span::styled(note, style));
        spans.push(Span::raw("  "));
    }
    if let Some(e) = &ops.readiness_error {
        spans.push(Span::styled(format!("gateway: {}", clean(e)), theme.error));
    }
    Line::from(spans)
}

fn render_rates(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    let block = panel(" Events per second ", theme);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let all: Vec<_> = ops.subjects.iter().collect();
    rate_rows(f, inner, &all, ops, theme);
}

fn rate_rows(
    f: &mut Frame,
    inner: Rect,
    subjects: &[(&String, &super::model::Subject)],
    ops: &Ops,
    theme: &Theme,
) {
    if let Some(e) = &ops.metrics_error {
        f.render_widget(
            Paragraph::new(format!("bus metrics: {}", clean(e)))
                .style(theme.error)
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    if subjects.is_empty() {
        f.render_widget(
            Paragraph::new("no events published yet").style(theme.dim),
            inner,
        );
        return;
    }
    let name_w = subjects
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0)
        .min(usize::from(inner.width / 3)) as u16;
    // One scale for every sparkline, so 1/s and 1,000/s do not draw alike.
    let top = subjects
        .iter()
        .flat_map(|(_, s)| s.rates.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    for (i, (name, sub)) in subjects.iter().enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.bottom() {
            break;
        }
        let row = Rect::new(inner.x, y, inner.width, 1);
        let [label, spark, now] = Layout::horizontal([
            Constraint::Length(name_w + 1),
            Constraint::Min(1),
            Constraint::Length(7),
        ])
        .areas(row);
        f.render_widget(Paragraph::new(truncate(&clean(name), name_w)), label);
        // The newest seconds at the right edge.
        let shown: Vec<u64> = sub
            .rates
            .iter()
            .skip(sub.rates.len().saturating_sub(usize::from(spark.width)))
            .copied()
            .collect();
        f.render_widget(
            Sparkline::default().data(&shown).max(top).style(theme.ok),
            spark,
        );
        f.render_widget(
            Paragraph::new(format!("{:>5}/s", sub.rates.back().copied().unwrap_or(0)))
                .style(theme.header),
            now,
        );
    }
}

fn render_groups(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    let header = Row::new(["group", "lag", "pending", "dead"]).style(theme.header);
    let rows = ops.groups.iter().map(|(name, g)| {
        let dead_style = if g.dead > 0 {
            theme.error
        } else {
            Style::new()
        };
        Row::new([
            Span::raw(clean(name).into_owned()),
            Span::raw(g.lag.to_string()),
            Span::raw(g.pending.to_string()),
            Span::styled(g.dead.to_string(), dead_style),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Min(6),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(5),
        ],
    )
    .header(header)
    .block(panel(" Groups ", theme));
    f.render_widget(table, area);
}

fn render_events(f: &mut Frame, area: Rect, ops: &Ops, theme: &Theme) {
    let title = match &ops.tail {
        TailState::Following if ops.scroll > 0 => format!(" Latest events (↑{}) ", ops.scroll),
        TailState::Following => " Latest events ".to_string(),
        TailState::Connecting => " Latest events (connecting to the bus…) ".to_string(),
        TailState::Off(_) => " Latest events (off) ".to_string(),
    };
    let block = panel(&title, theme);
    let inner = block.inner(area);
    f.render_widget(block, area);
    event_lines(f, inner, ops, theme);
}

fn event_lines(f: &mut Frame, inner: Rect, ops: &Ops, theme: &Theme) {
    if let TailState::Off(why) = &ops.tail {
        f.render_widget(
            Paragraph::new(clean(why).into_owned())
                .style(theme.dim)
                .wrap(Wrap { trim: true }),
            inner,
        );
        return;
    }
    let rows = usize::from(inner.height);
    let end = ops.events.len().saturating_sub(ops.scroll);
    let lines: Vec<Line> = ops
        .events
        .iter()
        .take(end)
        .skip(end.saturating_sub(rows))
        .map(|e| {
            let mut spans = vec![
                Span::styled(format!("{} ", e.at), theme.dim),
                Span::styled(format!("{:<20} ", clean(&e.subject)), theme.key),
                Span::raw(format!("{:<10} ", clean(&e.producer))),
                Span::raw(clean(&e.summary).into_owned()),
            ];
            if let Some(r) = &e.request {
                let short: String = clean(r).chars().take(8).collect();
                spans.push(Span::styled(format!("  req={short}"), theme.dim));
            }
            Line::from(spans)
        })
        .collect();
    f.render_widget(Paragraph::new(lines), inner);
}

fn panel<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .title(Span::styled(title, theme.header))
}

fn truncate(s: &str, width: u16) -> String {
    let w = usize::from(width);
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
