//! `fshm top`: a live view of the streams on the machine — who owns them, what kind they
//! are, how full, how fast they are written, and how far each lossless reader lags.
//!
//! Each refresh reads every stream's state from outside ([`fshm::list_with_prefix`] and
//! [`fshm::progress`]: no stream is joined, no reader slot taken, nobody woken), and
//! the write rate is the growth of the committed length between two such samples.
//! `--once` prints one frame as plain text (two samples one interval apart, so the
//! rate is measured too).

use crate::text::{escape, human, owner_text};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::ExecutableCommand;
use ratatui::layout::{Constraint, Layout};
use ratatui::prelude::{Backend, CrosstermBackend, Terminal};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row as TuiRow, Table};
use ratatui::Frame;
use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// The column titles, in order (`--once` prints them as its first line).
pub const COLUMNS: [&str; 9] = [
    "NAME", "USER", "OWNER", "KIND", "LENGTH", "FILL", "RATE", "READERS", "LAG",
];

/// What the rows are sorted by; `s` cycles through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Write rate, fastest first (the default).
    Rate,
    /// Name, in order.
    Name,
    /// Committed length, longest first.
    Length,
    /// Largest lag of a lossless reader, largest first.
    Lag,
}

impl SortKey {
    fn next(self) -> SortKey {
        match self {
            SortKey::Rate => SortKey::Name,
            SortKey::Name => SortKey::Length,
            SortKey::Length => SortKey::Lag,
            SortKey::Lag => SortKey::Rate,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            SortKey::Rate => "rate",
            SortKey::Name => "name",
            SortKey::Length => "length",
            SortKey::Lag => "lag",
        }
    }
}

/// One look at the streams.
pub struct Sample {
    at: Instant,
    streams: Vec<(fshm::StreamInfo, fshm::Progress)>,
}

/// Reads the state of every stream whose name starts with `prefix`. Streams that go
/// away between the listing and the look at their readers are left out.
pub fn sample(prefix: &str) -> io::Result<Sample> {
    let infos = fshm::list_with_prefix(prefix)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot list {}: {e}", fshm::SHM_DIR)))?;
    let streams = infos
        .into_iter()
        .filter_map(|i| fshm::progress(&i.name).ok().map(|p| (i, p)))
        .collect();
    Ok(Sample {
        at: Instant::now(),
        streams,
    })
}

/// One stream's line, its cells as shown and the figures it is sorted by.
#[derive(Clone, Debug)]
pub struct Row {
    /// The cells, one per [`COLUMNS`] entry.
    pub cells: [String; 9],
    name: String,
    rate: f64,
    len: u64,
    lag: u64,
}

/// The rows of `cur`, with rates measured against `prev` (if given), sorted by `sort`.
pub fn rows(prev: Option<&Sample>, cur: &Sample, sort: SortKey, users: &mut Users) -> Vec<Row> {
    let before: HashMap<&str, u64> = prev
        .map(|p| {
            p.streams
                .iter()
                .map(|(i, pr)| (i.name.as_str(), pr.len))
                .collect()
        })
        .unwrap_or_default();
    let dt = prev.map(|p| cur.at.duration_since(p.at).as_secs_f64());
    let mut out: Vec<Row> = cur
        .streams
        .iter()
        .map(|(i, p)| {
            // A stream new since the last sample, or recreated shorter, has no rate yet.
            let rate = match (dt, before.get(i.name.as_str())) {
                (Some(dt), Some(&old)) if dt > 0.0 && p.len >= old => {
                    Some((p.len - old) as f64 / dt)
                }
                _ => None,
            };
            let lags: Vec<u64> = p
                .readers
                .iter()
                .map(|&pos| p.len.saturating_sub(pos))
                .collect();
            let lag = lags.iter().copied().max().unwrap_or(0);
            let kind = match (i.ring_capacity, i.lossless, p.immutable) {
                (Some(_), true, _) => "ring lossless",
                (Some(_), false, _) => "ring lossy",
                (None, _, true) => "immutable",
                (None, _, false) => "linear",
            };
            let fill = match i.ring_capacity {
                // The bytes a lossless ring holds for its slowest reader; a lossy ring
                // holds up to its capacity.
                Some(cap) if i.lossless && !lags.is_empty() => percent(lag, cap),
                Some(cap) => percent(p.len.min(cap), cap),
                None => percent(p.len, i.max_size),
            };
            let readers = if i.lossless {
                p.readers.len().to_string()
            } else {
                "-".to_owned()
            };
            let lag_text = if lags.is_empty() {
                "-".to_owned()
            } else {
                let mut shown: Vec<String> = lags.iter().take(3).map(|&l| human(l)).collect();
                if lags.len() > 3 {
                    shown.push(format!("+{}", lags.len() - 3));
                }
                shown.join(",")
            };
            Row {
                cells: [
                    escape(&i.name),
                    users.name(i.uid),
                    owner_text(i),
                    kind.to_owned(),
                    human(p.len),
                    fill,
                    rate.map_or("-".to_owned(), |r| format!("{}/s", human(r as u64))),
                    readers,
                    lag_text,
                ],
                name: i.name.clone(),
                rate: rate.unwrap_or(0.0),
                len: p.len,
                lag,
            }
        })
        .collect();
    sort_rows(&mut out, sort);
    out
}

/// Sorts `rows` by `sort`, then by name.
pub fn sort_rows(rows: &mut [Row], sort: SortKey) {
    rows.sort_by(|a, b| {
        let by = match sort {
            SortKey::Rate => b.rate.total_cmp(&a.rate),
            SortKey::Name => std::cmp::Ordering::Equal,
            SortKey::Length => b.len.cmp(&a.len),
            SortKey::Lag => b.lag.cmp(&a.lag),
        };
        by.then_with(|| a.name.cmp(&b.name))
    });
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.0}%", part as f64 * 100.0 / whole as f64)
}

/// User names by uid, looked up once each (`getpwuid_r`; the uid itself where the
/// system has no name for it).
#[derive(Default)]
pub struct Users(HashMap<u32, String>);

impl Users {
    /// The name of user `uid`.
    pub fn name(&mut self, uid: u32) -> String {
        self.0
            .entry(uid)
            .or_insert_with(|| user_name(uid).unwrap_or_else(|| uid.to_string()))
            .clone()
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `passwd` is plain data that getpwuid_r fills; the strings it points to
    // live in `buf`, which outlives every use of them below.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || pw.pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(pw.pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// `rows` as plain text: the header line, then one line per stream, each column
/// left-aligned to its widest cell and separated by two spaces (no escape codes).
pub fn plain(rows: &[Row]) -> String {
    let header = COLUMNS.map(String::from);
    let mut width = [0usize; 9];
    for cells in std::iter::once(&header).chain(rows.iter().map(|r| &r.cells)) {
        for (w, c) in width.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(&header).chain(rows.iter().map(|r| &r.cells)) {
        let line: Vec<String> = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// What the live view shows and how.
pub struct App {
    /// Only streams whose name starts with this.
    pub prefix: String,
    /// The order of the rows.
    pub sort: SortKey,
    /// The prefix being typed after `/`, if the user is typing one.
    pub editing: Option<String>,
    /// The rows of the last refresh.
    pub rows: Vec<Row>,
    /// Why the last refresh failed, if it did.
    pub error: Option<String>,
}

impl App {
    /// A view of the streams under `prefix`, sorted by rate.
    pub fn new(prefix: String) -> App {
        App {
            prefix,
            sort: SortKey::Rate,
            editing: None,
            rows: Vec::new(),
            error: None,
        }
    }
}

/// Draws one frame of `app`: a title line, the table, a line of keys.
pub fn draw(f: &mut Frame, app: &App) {
    let [title, table, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let filter = if app.prefix.is_empty() {
        "all streams".to_owned()
    } else {
        format!("prefix {}", escape(&app.prefix))
    };
    let status = match &app.error {
        Some(e) => format!("  error: {e}"),
        None => String::new(),
    };
    f.render_widget(
        Paragraph::new(Line::from(format!(
            "fshm top: {} stream(s), {filter}, sorted by {}{status}",
            app.rows.len(),
            app.sort.as_str()
        ))),
        title,
    );
    let mut width: [usize; 9] = COLUMNS.map(str::len);
    for r in &app.rows {
        for (w, c) in width.iter_mut().zip(&r.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let header = TuiRow::new(COLUMNS.iter().map(|c| Cell::from(*c)))
        .style(Style::default().add_modifier(Modifier::BOLD | Modifier::REVERSED));
    let body = app
        .rows
        .iter()
        .map(|r| TuiRow::new(r.cells.iter().map(|c| Cell::from(c.as_str()))));
    let widths = width.map(|w| Constraint::Length(w as u16));
    f.render_widget(
        Table::new(body, widths)
            .header(header)
            .column_spacing(2)
            .block(Block::default()),
        table,
    );
    let line = match &app.editing {
        Some(p) => format!("filter by prefix: {p}_   (Enter apply, Esc cancel)"),
        None => "q quit   s sort (rate, name, length, lag)   / filter by prefix".to_owned(),
    };
    f.render_widget(
        Paragraph::new(Line::from(line)).style(Style::default().add_modifier(Modifier::DIM)),
        keys,
    );
}

/// What a key press asks of the loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more than a redraw.
    Redraw,
    /// Take a new sample now (the prefix changed).
    Refresh,
    /// Leave.
    Quit,
}

/// Applies one key press to `app`.
pub fn key(app: &mut App, code: KeyCode, modifiers: KeyModifiers) -> Action {
    if code == KeyCode::Char('c') && modifiers.contains(KeyModifiers::CONTROL) {
        return Action::Quit;
    }
    if let Some(p) = app.editing.as_mut() {
        match code {
            KeyCode::Enter => {
                app.prefix = app.editing.take().unwrap_or_default();
                return Action::Refresh;
            }
            KeyCode::Esc => app.editing = None,
            KeyCode::Backspace => {
                p.pop();
            }
            KeyCode::Char(c) => p.push(c),
            _ => {}
        }
        return Action::Redraw;
    }
    match code {
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char('s') => {
            app.sort = app.sort.next();
            sort_rows(&mut app.rows, app.sort);
            Action::Redraw
        }
        KeyCode::Char('/') => {
            app.editing = Some(app.prefix.clone());
            Action::Redraw
        }
        _ => Action::Redraw,
    }
}

/// Puts the terminal back as it was, also when the view ends by an error.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
        let _ = io::stdout().execute(LeaveAlternateScreen);
    }
}

/// `fshm top`: with `once`, prints one frame as plain text to `out`; else runs the live
/// view on the terminal until `q`.
pub fn run(
    out: &mut impl Write,
    prefix: Option<String>,
    once: bool,
    interval: Duration,
) -> io::Result<()> {
    let prefix = prefix.unwrap_or_default();
    let mut users = Users::default();
    if once {
        let first = sample(&prefix)?;
        std::thread::sleep(interval);
        let second = sample(&prefix)?;
        return out
            .write_all(plain(&rows(Some(&first), &second, SortKey::Rate, &mut users)).as_bytes());
    }
    if !io::stdout().is_terminal() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fshm top needs a terminal (for one plain-text frame: fshm top --once)",
        ));
    }
    enable_raw_mode()?;
    let _restore = Restore;
    io::stdout().execute(EnterAlternateScreen)?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    live(&mut terminal, App::new(prefix), interval, &mut users)
}

/// The live loop: sample, draw, wait for a key or the next refresh.
fn live<B: Backend>(
    terminal: &mut Terminal<B>,
    mut app: App,
    interval: Duration,
    users: &mut Users,
) -> io::Result<()> {
    let mut prev: Option<Sample> = None;
    loop {
        match sample(&app.prefix) {
            Ok(cur) => {
                app.rows = rows(prev.as_ref(), &cur, app.sort, users);
                app.error = None;
                prev = Some(cur);
            }
            Err(e) => app.error = Some(e.to_string()),
        }
        let next = Instant::now() + interval;
        loop {
            terminal.draw(|f| draw(f, &app))?;
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left)? {
                break;
            }
            let Event::Key(k) = event::read()? else {
                continue;
            };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            match key(&mut app, k.code, k.modifiers) {
                Action::Quit => return Ok(()),
                Action::Redraw => {}
                Action::Refresh => {
                    // A new prefix shows other streams: their rates start afresh.
                    prev = None;
                    break;
                }
            }
        }
    }
}
