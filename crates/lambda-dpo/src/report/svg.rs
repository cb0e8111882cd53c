//! A small, dependency-free SVG chart writer for the demo's report: [`LineChart`] (reward vs λ),
//! [`ScatterChart`] (reward of one dimension against another, with Pareto fronts as staircases)
//! and [`BarChart`] (grouped bars, e.g. hypervolume per method).
//!
//! Choices that hold for every chart:
//! - **Deterministic**: the same input gives the same bytes (no maps, no clocks, fixed number
//!   formatting), so reports diff cleanly and tests can compare strings.
//! - **Self-contained**: no `id`s (several charts are inlined into one HTML page, and SVG ids
//!   are page-global), no scripts, no external fonts; text is XML-escaped.
//! - **Readable**: "nice" ticks (1, 2, 5 × 10^k), light grid lines, the legend *outside* the plot
//!   area on the right so it can never cover data, and the Okabe–Ito palette (colour-blind safe)
//!   with a distinct marker shape per series so series stay apart in grey-scale print too.
//! - **Bad values never panic**: a point with a NaN/±∞ coordinate is skipped (a line is broken
//!   there), a non-finite bar is drawn as "n/a", a series without any finite point stays in the
//!   legend marked "(no data)", and a chart with no data at all says so in the plot area.
//!
//! What does not live here: the page around the charts ([`super::html`]) and the numbers in them
//! (the demo's evaluation and [`lambda_dpo_math::pareto`]).

use std::fmt::Write;

/// Okabe & Ito (2008) colour-blind-safe palette, in the order series get it. Yellow is last:
/// it is the one colour with poor contrast on white.
pub const PALETTE: [&str; 8] = [
    "#0072B2", // blue
    "#E69F00", // orange
    "#009E73", // bluish green
    "#D55E00", // vermillion
    "#CC79A7", // reddish purple
    "#56B4E9", // sky blue
    "#000000", // black
    "#F0E442", // yellow
];

const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
/// Average glyph width of the sans-serif fonts above, in ems: the layout has no font metrics,
/// so text widths are estimated (generously, so estimates err towards more room).
const EM_PER_CHAR: f64 = 0.6;
const TICK_FONT: f64 = 11.0;
const LABEL_FONT: f64 = 12.0;
const TITLE_FONT: f64 = 15.0;
const LEGEND_FONT: f64 = 12.0;
const LEGEND_ROW: f64 = 20.0;
const MIN_PLOT_WIDTH: f64 = 260.0;

// Writing into a `String` cannot fail; this hides the `fmt::Result` that `write!` returns.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// How the points of a scatter series are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connect {
    /// Markers only.
    #[default]
    None,
    /// Straight segments in the order the points were given (a trajectory, e.g. along λ).
    Line,
    /// The staircase outlining what a maximisation front dominates: points sorted by x, each
    /// step drops vertically to the next point's y, then runs horizontally to it.
    Step,
}

/// One named series of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    connect: Connect,
    markers: bool,
}

/// Title, axis labels, size and requested ranges: what every x–y chart shares.
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    title: String,
    x_label: String,
    y_label: String,
    width: f64,
    height: f64,
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
}

impl Frame {
    fn new(title: String) -> Self {
        Frame {
            title,
            x_label: String::new(),
            y_label: String::new(),
            width: 720.0,
            height: 420.0,
            x_range: None,
            y_range: None,
        }
    }
}

/// Builder methods shared by [`LineChart`] and [`ScatterChart`].
macro_rules! frame_methods {
    () => {
        /// Label under the x axis.
        pub fn x_label(mut self, label: impl Into<String>) -> Self {
            self.frame.x_label = label.into();
            self
        }

        /// Label beside the y axis (rotated).
        pub fn y_label(mut self, label: impl Into<String>) -> Self {
            self.frame.y_label = label.into();
            self
        }

        /// Overall size in pixels (default 720 × 420). The width grows when the legend needs
        /// it, so the plot area keeps at least 260 px.
        pub fn size(mut self, width: u32, height: u32) -> Self {
            self.frame.width = f64::from(width.max(200));
            self.frame.height = f64::from(height.max(160));
            self
        }

        /// Make the x axis cover at least `[lo, hi]` (e.g. `0..1` for λ). The axis still grows
        /// to fit every finite point, so nothing is ever drawn outside the plot area.
        pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
            self.frame.x_range = finite_pair(lo, hi);
            self
        }

        /// Make the y axis cover at least `[lo, hi]`; as [`Self::x_range`].
        pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
            self.frame.y_range = finite_pair(lo, hi);
            self
        }
    };
}

/// Several named series of `(x, y)` joined by lines, in x order, with a marker at every point.
///
/// ```text
/// LineChart::new("Reward vs λ").x_label("λ₁").y_label("mean reward")
///     .series("DPO", [(0.0, 0.2), (0.5, 0.4), (1.0, 0.5)]).to_svg()
/// ```
///
/// A point with a non-finite x is dropped; one with a non-finite y breaks the line there.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    frame: Frame,
    series: Vec<Series>,
}

impl LineChart {
    /// An empty chart with a title.
    pub fn new(title: impl Into<String>) -> Self {
        LineChart {
            frame: Frame::new(title.into()),
            series: Vec::new(),
        }
    }

    frame_methods!();

    /// Add a series; it gets the next palette colour and marker shape.
    pub fn series(
        mut self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        let mut points: Vec<(f64, f64)> = points.into_iter().filter(|p| p.0.is_finite()).collect();
        // Stable sort: points with equal x keep their given order.
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        self.series.push(Series {
            name: name.into(),
            points,
            connect: Connect::Line,
            markers: true,
        });
        self
    }

    /// The chart as a standalone SVG document (no XML declaration, so it can be inlined in HTML).
    pub fn to_svg(&self) -> String {
        render_xy(&self.frame, &self.series)
    }
}

/// Named point sets, each optionally joined as a trajectory or a front staircase.
///
/// ```text
/// ScatterChart::new("Front").x_label("helpfulness").y_label("harmlessness")
///     .series("λ-DPO", points).series_with("λ-DPO front", front, Connect::Step).to_svg()
/// ```
///
/// Points with a non-finite coordinate are skipped (a connecting line is broken there).
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterChart {
    frame: Frame,
    series: Vec<Series>,
}

impl ScatterChart {
    /// An empty chart with a title.
    pub fn new(title: impl Into<String>) -> Self {
        ScatterChart {
            frame: Frame::new(title.into()),
            series: Vec::new(),
        }
    }

    frame_methods!();

    /// Add a set of unconnected points.
    pub fn series(
        self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        self.series_with(name, points, Connect::None)
    }

    /// Add a set of points joined as `connect` says.
    pub fn series_with(
        mut self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
        connect: Connect,
    ) -> Self {
        let mut points: Vec<(f64, f64)> = points.into_iter().collect();
        if connect == Connect::Step {
            // A staircase is only defined in x order; non-finite points are dropped first since
            // they have no place in that order.
            points.retain(|p| p.0.is_finite() && p.1.is_finite());
            points.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        }
        self.series.push(Series {
            name: name.into(),
            points,
            connect,
            markers: true,
        });
        self
    }

    /// The chart as a standalone SVG document (no XML declaration, so it can be inlined in HTML).
    pub fn to_svg(&self) -> String {
        render_xy(&self.frame, &self.series)
    }
}

/// Grouped bars: one group per category, one bar per series in each, the value printed on
/// every bar. The y axis always includes 0 (bars grow from it; negative values hang below).
///
/// ```text
/// BarChart::new("Hypervolume").y_label("HV").categories(["2 dims", "3 dims"])
///     .series("DPO", [0.21, 0.08]).series("λ-DPO", [0.25, 0.11]).to_svg()
/// ```
///
/// A series shorter than the categories has no bar for the missing ones; extra values are
/// ignored; a non-finite value is drawn as the label "n/a" on the axis, without a bar.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    title: String,
    y_label: String,
    width: f64,
    height: f64,
    categories: Vec<String>,
    series: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    /// An empty chart with a title.
    pub fn new(title: impl Into<String>) -> Self {
        BarChart {
            title: title.into(),
            y_label: String::new(),
            width: 720.0,
            height: 420.0,
            categories: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Label beside the y axis (rotated).
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Overall size in pixels (default 720 × 420); the width grows when the legend needs it.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = f64::from(width.max(200));
        self.height = f64::from(height.max(160));
        self
    }

    /// The group names along the x axis, in order.
    pub fn categories<S: Into<String>>(mut self, categories: impl IntoIterator<Item = S>) -> Self {
        self.categories = categories.into_iter().map(Into::into).collect();
        self
    }

    /// Add a series: one value per category, in category order.
    pub fn series(
        mut self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = f64>,
    ) -> Self {
        self.series
            .push((name.into(), values.into_iter().collect()));
        self
    }

    /// The chart as a standalone SVG document (no XML declaration, so it can be inlined in HTML).
    pub fn to_svg(&self) -> String {
        render_bars(self)
    }
}

// ------------------------------------------------------------------ axes

/// A linear axis: data range `[lo, hi]` mapped onto pixels `[p0, p1]`, with its ticks.
#[derive(Debug)]
struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    /// Decimals that print every tick distinctly (from the tick step).
    decimals: usize,
}

impl Axis {
    /// Ticks at a "nice" step (1, 2 or 5 × 10^k) giving about `target` intervals, and bounds
    /// widened to the enclosing ticks (Heckbert, "Nice numbers for graph labels", 1990).
    fn nice(lo: f64, hi: f64, target: usize) -> Axis {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            // A single value: centre it in a small range instead of dividing by zero.
            let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
            (lo - pad, lo + pad)
        };
        let step = nice_step((hi - lo) / target.max(1) as f64);
        // The small slack keeps a bound that is a tick up to rounding (0.30000000000000004)
        // from adding a whole extra interval.
        let first = (lo / step + 1e-9).floor();
        let last = (hi / step - 1e-9).ceil();
        let n = (last - first).round().max(1.0) as usize;
        // For steps below 1, divide by the (integer) inverse instead of multiplying by the
        // step: 3 / 5 is exactly 0.6, while 3 × 0.2 is 0.6000000000000001.
        let inverse = (step < 1.0).then(|| (1.0 / step).round());
        let ticks: Vec<f64> = (0..=n)
            .map(|k| {
                let i = first + k as f64;
                let v = inverse.map_or(i * step, |inv| i / inv);
                // Snap values that should be 0 but carry rounding noise, so no "-0" or "1e-17".
                if v.abs() < step * 1e-9 {
                    0.0
                } else {
                    v
                }
            })
            .collect();
        let decimals = (-(step.log10() + 1e-9).floor()).max(0.0) as usize;
        Axis {
            lo: ticks[0],
            hi: ticks[n],
            ticks,
            decimals,
        }
    }

    fn px(&self, v: f64, p0: f64, p1: f64) -> f64 {
        p0 + (v - self.lo) / (self.hi - self.lo) * (p1 - p0)
    }

    fn label(&self, v: f64) -> String {
        let magnitude = self.lo.abs().max(self.hi.abs());
        if magnitude >= 1e6 || (self.decimals > 6 && magnitude > 0.0) {
            // Too many digits for a tick label either way: scientific, three significant digits.
            fmt_sci(v)
        } else {
            trim_zero(format!("{v:.*}", self.decimals))
        }
    }
}

/// The nice number (1, 2, 5 × 10^k) nearest to a raw tick step.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw > 0.0 && raw.is_finite() {
        raw
    } else {
        1.0
    };
    let exp = raw.log10().floor();
    let base = 10f64.powf(exp);
    let f = raw / base;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * base
}

/// `[lo, hi]` of the finite values, widened by `extra` (a requested range), if any.
fn data_range(values: impl Iterator<Item = f64>, extra: Option<(f64, f64)>) -> Option<(f64, f64)> {
    let mut range = extra;
    for v in values.filter(|v| v.is_finite()) {
        range = Some(match range {
            None => (v, v),
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
        });
    }
    range
}

fn finite_pair(lo: f64, hi: f64) -> Option<(f64, f64)> {
    (lo.is_finite() && hi.is_finite()).then(|| (lo.min(hi), lo.max(hi)))
}

// ------------------------------------------------------------------ number and text formatting

/// A pixel coordinate: two decimals at most, trailing zeros dropped (`12.5`, not `12.500000`).
fn px(v: f64) -> String {
    trim_zero(format!("{v:.2}"))
}

/// Drop trailing zeros after a decimal point, and print `-0` as `0`.
fn trim_zero(mut s: String) -> String {
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// A value label: three significant digits (`0.412`, `12.3`, `1230`), scientific when very
/// large or small (`1.2e-5`).
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor();
    if !(-3.0..6.0).contains(&mag) {
        return fmt_sci(v);
    }
    let decimals = (2.0 - mag).max(0.0) as usize;
    trim_zero(format!("{v:.decimals$}"))
}

fn fmt_sci(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    // Rust prints `1.20e-5`; trim the mantissa's zeros for the compact `1.2e-5`.
    let s = format!("{v:.2e}");
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", trim_zero(m.to_string())),
        None => s,
    }
}

/// Escape text for XML/HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline are not allowed in XML 1.0 at all.
            c if c.is_control() && c != '\t' && c != '\n' => {}
            c => out.push(c),
        }
    }
    out
}

fn text_width(text: &str, font: f64) -> f64 {
    text.chars().count() as f64 * font * EM_PER_CHAR
}

// ------------------------------------------------------------------ drawing pieces

/// Pixel box of the plot area and the size of the whole picture.
#[derive(Debug, Clone, Copy)]
struct Layout {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    legend_x: f64,
}

/// Place the plot area: room on the left for y ticks and label, on the right for the legend,
/// at the top for the title, at the bottom for x ticks and label (`bottom_extra` for rotated
/// category names).
fn layout(
    width: f64,
    height: f64,
    y_tick_width: f64,
    has_y_label: bool,
    has_x_label: bool,
    legend: &[String],
    bottom_extra: f64,
) -> Layout {
    let left = 14.0 + if has_y_label { LABEL_FONT + 10.0 } else { 0.0 } + y_tick_width + 8.0;
    let legend_width = legend
        .iter()
        .map(|n| text_width(n, LEGEND_FONT))
        .fold(0.0, f64::max);
    let legend_width = if legend.is_empty() {
        0.0
    } else {
        28.0 + legend_width + 16.0
    };
    // Widen the picture rather than squeeze the plot when names are long.
    let width = width.max(left + MIN_PLOT_WIDTH + legend_width + 16.0);
    let top = 44.0;
    let min_height = top + legend.len() as f64 * LEGEND_ROW + 60.0 + bottom_extra;
    let height = height.max(min_height);
    let right = width - 16.0 - legend_width;
    Layout {
        width,
        height,
        left,
        right,
        top,
        bottom: height - if has_x_label { 52.0 } else { 30.0 } - bottom_extra,
        legend_x: right + 20.0,
    }
}

fn open_svg(out: &mut String, l: &Layout, title: &str) {
    w!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"{FONT}\" role=\"img\">\n",
        w = px(l.width),
        h = px(l.height)
    );
    // <title> is what screen readers and browser tooltips show.
    w!(out, "<title>{}</title>\n", escape(title));
    w!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n",
        px(l.width),
        px(l.height)
    );
    w!(
        out,
        "<text x=\"{}\" y=\"26\" font-size=\"{TITLE_FONT}\" font-weight=\"bold\" \
         text-anchor=\"middle\" fill=\"#222222\">{}</text>\n",
        px((l.left + l.right) / 2.0),
        escape(title)
    );
}

/// Horizontal grid lines and y tick labels.
fn draw_y_axis(out: &mut String, l: &Layout, y: &Axis, label: &str) {
    out.push_str("<g font-size=\"11\" fill=\"#444444\" text-anchor=\"end\">\n");
    for &t in &y.ticks {
        let py = y.px(t, l.bottom, l.top);
        w!(
            out,
            "<line x1=\"{}\" y1=\"{p}\" x2=\"{}\" y2=\"{p}\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n",
            px(l.left),
            px(l.right),
            p = px(py)
        );
        w!(
            out,
            "<text x=\"{}\" y=\"{}\">{}</text>\n",
            px(l.left - 6.0),
            px(py + TICK_FONT * 0.35),
            escape(&y.label(t))
        );
    }
    out.push_str("</g>\n");
    if !label.is_empty() {
        let (cx, cy) = (14.0 + LABEL_FONT * 0.8, (l.top + l.bottom) / 2.0);
        w!(
            out,
            "<text x=\"{x}\" y=\"{y}\" transform=\"rotate(-90 {x} {y})\" font-size=\"{LABEL_FONT}\" \
             text-anchor=\"middle\" fill=\"#222222\">{}</text>\n",
            escape(label),
            x = px(cx),
            y = px(cy)
        );
    }
}

/// Vertical grid lines and x tick labels.
fn draw_x_axis(out: &mut String, l: &Layout, x: &Axis, label: &str) {
    out.push_str("<g font-size=\"11\" fill=\"#444444\" text-anchor=\"middle\">\n");
    for &t in &x.ticks {
        let p = x.px(t, l.left, l.right);
        w!(
            out,
            "<line x1=\"{p}\" y1=\"{}\" x2=\"{p}\" y2=\"{}\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n",
            px(l.top),
            px(l.bottom),
            p = px(p)
        );
        w!(
            out,
            "<text x=\"{}\" y=\"{}\">{}</text>\n",
            px(p),
            px(l.bottom + 16.0),
            escape(&x.label(t))
        );
    }
    out.push_str("</g>\n");
    x_axis_label(out, l, label);
}

fn x_axis_label(out: &mut String, l: &Layout, label: &str) {
    if !label.is_empty() {
        w!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"{LABEL_FONT}\" text-anchor=\"middle\" \
             fill=\"#222222\">{}</text>\n",
            px((l.left + l.right) / 2.0),
            px(l.height - 14.0),
            escape(label)
        );
    }
}

/// The plot frame's left and bottom edges, drawn over the grid.
fn draw_frame(out: &mut String, l: &Layout) {
    w!(
        out,
        "<path d=\"M{} {}V{}H{}\" fill=\"none\" stroke=\"#555555\" stroke-width=\"1\"/>\n",
        px(l.left),
        px(l.top),
        px(l.bottom),
        px(l.right)
    );
}

fn no_data(out: &mut String, l: &Layout) {
    w!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#888888\">no data</text>\n",
        px((l.left + l.right) / 2.0),
        px((l.top + l.bottom) / 2.0)
    );
}

/// A marker of shape `i % 4` (circle, square, triangle, diamond) centred on `(x, y)`.
fn marker(out: &mut String, i: usize, x: f64, y: f64, colour: &str, r: f64) {
    // A white outline separates overlapping markers of different series.
    let style = format!("fill=\"{colour}\" stroke=\"#ffffff\" stroke-width=\"1\"");
    match i % 4 {
        0 => w!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" {style}/>\n",
            px(x),
            px(y),
            px(r)
        ),
        1 => {
            let s = r * 0.9;
            w!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" {style}/>\n",
                px(x - s),
                px(y - s),
                px(2.0 * s),
                px(2.0 * s)
            )
        }
        2 => {
            let s = r * 1.2;
            w!(
                out,
                "<path d=\"M{} {}L{} {}L{} {}Z\" {style}/>\n",
                px(x),
                px(y - s),
                px(x + s),
                px(y + s * 0.8),
                px(x - s),
                px(y + s * 0.8)
            )
        }
        _ => {
            let s = r * 1.25;
            w!(
                out,
                "<path d=\"M{} {}L{} {}L{} {}L{} {}Z\" {style}/>\n",
                px(x),
                px(y - s),
                px(x + s),
                px(y),
                px(x),
                px(y + s),
                px(x - s),
                px(y)
            )
        }
    }
}

/// Legend rows at the right of the plot area: a swatch drawn by `swatch`, then the name.
fn draw_legend(
    out: &mut String,
    l: &Layout,
    names: &[String],
    mut swatch: impl FnMut(&mut String, usize, f64, f64),
) {
    for (i, name) in names.iter().enumerate() {
        let y = l.top + 8.0 + i as f64 * LEGEND_ROW;
        swatch(out, i, l.legend_x, y);
        w!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"{LEGEND_FONT}\" fill=\"#222222\">{}</text>\n",
            px(l.legend_x + 28.0),
            px(y + LEGEND_FONT * 0.35),
            escape(name)
        );
    }
}

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Legend names, with "(no data)" for series that have nothing to draw.
fn legend_names<'a>(series: impl Iterator<Item = (&'a str, bool)>) -> Vec<String> {
    series
        .map(|(name, has_data)| {
            if has_data {
                name.to_string()
            } else {
                format!("{name} (no data)")
            }
        })
        .collect()
}

// ------------------------------------------------------------------ x–y charts

fn finite(p: &(f64, f64)) -> bool {
    p.0.is_finite() && p.1.is_finite()
}

fn render_xy(frame: &Frame, series: &[Series]) -> String {
    let all = || {
        series
            .iter()
            .flat_map(|s| s.points.iter().filter(|p| finite(p)))
    };
    let xr = data_range(all().map(|p| p.0), frame.x_range);
    let yr = data_range(all().map(|p| p.1), frame.y_range);
    let has_data = all().next().is_some();
    let (xr, yr) = (xr.unwrap_or((0.0, 1.0)), yr.unwrap_or((0.0, 1.0)));
    let y = Axis::nice(yr.0, yr.1, 5);
    let y_tick_width = y
        .ticks
        .iter()
        .map(|&t| text_width(&y.label(t), TICK_FONT))
        .fold(0.0, f64::max);
    let names = legend_names(
        series
            .iter()
            .map(|s| (s.name.as_str(), s.points.iter().any(finite))),
    );
    let l = layout(
        frame.width,
        frame.height,
        y_tick_width,
        !frame.y_label.is_empty(),
        !frame.x_label.is_empty(),
        &names,
        0.0,
    );
    // As many x ticks as fit side by side: long labels (400000) on a narrow plot get fewer.
    let plot_width = l.right - l.left;
    let x = (2..=6)
        .rev()
        .map(|target| Axis::nice(xr.0, xr.1, target))
        .find(|a| {
            let widest = a
                .ticks
                .iter()
                .map(|&t| text_width(&a.label(t), TICK_FONT))
                .fold(0.0, f64::max);
            widest + 8.0 <= plot_width / (a.ticks.len() - 1).max(1) as f64
        })
        .unwrap_or_else(|| Axis::nice(xr.0, xr.1, 1));

    let mut out = String::new();
    open_svg(&mut out, &l, &frame.title);
    draw_y_axis(&mut out, &l, &y, &frame.y_label);
    draw_x_axis(&mut out, &l, &x, &frame.x_label);
    draw_frame(&mut out, &l);
    if !has_data {
        no_data(&mut out, &l);
    }
    let to_px = |p: &(f64, f64)| (x.px(p.0, l.left, l.right), y.px(p.1, l.bottom, l.top));
    for (i, s) in series.iter().enumerate() {
        let c = colour(i);
        let d = path_data(&s.points, s.connect, &to_px);
        if !d.is_empty() {
            w!(
                out,
                "<path d=\"{d}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" \
                 stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n"
            );
        }
        if s.markers {
            for p in s.points.iter().filter(|p| finite(p)) {
                let (px_, py_) = to_px(p);
                marker(&mut out, i, px_, py_, c, 4.0);
            }
        }
    }
    draw_legend(&mut out, &l, &names, |out, i, lx, ly| {
        let s = &series[i];
        if s.connect != Connect::None {
            w!(
                out,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                px(lx),
                px(lx + 22.0),
                colour(i),
                y = px(ly)
            );
        }
        marker(out, i, lx + 11.0, ly, colour(i), 4.0);
    });
    out.push_str("</svg>\n");
    out
}

/// SVG path data joining the finite points; a non-finite point starts a new sub-path (a gap).
fn path_data(
    points: &[(f64, f64)],
    connect: Connect,
    to_px: &impl Fn(&(f64, f64)) -> (f64, f64),
) -> String {
    let mut d = String::new();
    if connect == Connect::None {
        return d;
    }
    let mut prev: Option<(f64, f64)> = None;
    for p in points {
        if !finite(p) {
            prev = None;
            continue;
        }
        let (x, y) = to_px(p);
        match (prev, connect) {
            (None, _) => w!(d, "M{} {}", px(x), px(y)),
            // Vertical to the new y, then horizontal to the new x: the dominated region's edge.
            (Some(_), Connect::Step) => w!(d, "V{}H{}", px(y), px(x)),
            (Some(_), _) => w!(d, "L{} {}", px(x), px(y)),
        }
        prev = Some((x, y));
    }
    // A lone point makes a sub-path without a segment; that is valid SVG and draws nothing.
    d
}

// ------------------------------------------------------------------ bars

fn render_bars(chart: &BarChart) -> String {
    let n_cat = chart.categories.len();
    let value = |s: &(String, Vec<f64>), c: usize| s.1.get(c).copied();
    let finite_values = || {
        chart
            .series
            .iter()
            .flat_map(move |s| (0..n_cat).filter_map(move |c| value(s, c)))
            .filter(|v| v.is_finite())
    };
    let has_data = finite_values().next().is_some();
    // Bars grow from 0, so 0 is always on the axis; 12% headroom keeps value labels inside.
    let (mut lo, mut hi) = data_range(finite_values(), Some((0.0, 0.0))).unwrap_or((0.0, 1.0));
    if hi == lo {
        hi = 1.0;
    }
    let span = hi - lo;
    if hi > 0.0 {
        hi += 0.12 * span;
    }
    if lo < 0.0 {
        lo -= 0.12 * span;
    }
    let y = Axis::nice(lo, hi, 5);
    let y_tick_width = y
        .ticks
        .iter()
        .map(|&t| text_width(&y.label(t), TICK_FONT))
        .fold(0.0, f64::max);
    let names = legend_names(chart.series.iter().map(|s| {
        (
            s.0.as_str(),
            (0..n_cat).any(|c| value(s, c).is_some_and(f64::is_finite)),
        )
    }));
    // First pass at the layout to learn the band width; rotate category names that do not fit.
    let probe = layout(
        chart.width,
        chart.height,
        y_tick_width,
        !chart.y_label.is_empty(),
        false,
        &names,
        0.0,
    );
    let band = (probe.right - probe.left) / n_cat.max(1) as f64;
    let widest = chart
        .categories
        .iter()
        .map(|c| text_width(c, TICK_FONT))
        .fold(0.0, f64::max);
    let rotate = widest > band - 6.0;
    // A name rotated by 30° needs sin(30°)·width of height below the axis.
    let bottom_extra = if rotate { widest * 0.5 } else { 0.0 };
    let mut l = layout(
        chart.width,
        chart.height,
        y_tick_width,
        !chart.y_label.is_empty(),
        false,
        &names,
        bottom_extra,
    );
    if rotate {
        // A name rotated by −30° and anchored at its end reaches cos 30°·width left of its
        // group's centre: move the plot right until the first one stays inside the picture.
        l.left = l.left.max(0.87 * widest - band / 2.0 + 8.0);
    }
    let band = (l.right - l.left) / n_cat.max(1) as f64;

    let mut out = String::new();
    open_svg(&mut out, &l, &chart.title);
    draw_y_axis(&mut out, &l, &y, &chart.y_label);
    // Category names under their groups.
    out.push_str("<g font-size=\"11\" fill=\"#444444\">\n");
    for (c, name) in chart.categories.iter().enumerate() {
        let cx = l.left + (c as f64 + 0.5) * band;
        let ty = l.bottom + 16.0;
        if rotate {
            w!(
                out,
                "<text x=\"{x}\" y=\"{y}\" transform=\"rotate(-30 {x} {y})\" text-anchor=\"end\">{}</text>\n",
                escape(name),
                x = px(cx),
                y = px(ty)
            );
        } else {
            w!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                px(cx),
                px(ty),
                escape(name)
            );
        }
    }
    out.push_str("</g>\n");
    if !has_data {
        no_data(&mut out, &l);
    }

    let zero = y.px(0.0, l.bottom, l.top);
    let n_series = chart.series.len().max(1);
    // 80% of a band for bars, the rest is the gap between groups.
    let bar = band * 0.8 / n_series as f64;
    for (s_idx, s) in chart.series.iter().enumerate() {
        for c in 0..n_cat {
            let Some(v) = value(s, c) else { continue };
            let x0 = l.left + c as f64 * band + band * 0.1 + s_idx as f64 * bar;
            let cx = x0 + bar / 2.0;
            let label = fmt_value(v);
            if !v.is_finite() {
                w!(
                    out,
                    "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#888888\">n/a</text>\n",
                    px(cx),
                    px(zero - 4.0)
                );
                continue;
            }
            let top = y.px(v, l.bottom, l.top);
            let (ry, rh) = if v >= 0.0 {
                (top, zero - top)
            } else {
                (zero, top - zero)
            };
            w!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                px(x0 + 0.5),
                px(ry),
                px((bar - 1.0).max(1.0)),
                px(rh),
                colour(s_idx)
            );
            // The value beside the bar's end: horizontal if it fits the bar's width, else
            // rotated to read upwards, so neighbouring labels never collide.
            let above = v >= 0.0;
            let fits = text_width(&label, 10.0) <= bar + 2.0;
            let ly = if above { top - 4.0 } else { top + 4.0 };
            if fits {
                let ly = if above { ly } else { ly + 8.0 };
                w!(
                    out,
                    "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#222222\">{}</text>\n",
                    px(cx),
                    px(ly),
                    escape(&label)
                );
            } else {
                let anchor = if above { "start" } else { "end" };
                w!(
                    out,
                    "<text x=\"{x}\" y=\"{y}\" transform=\"rotate(-90 {x} {y})\" font-size=\"10\" \
                     text-anchor=\"{anchor}\" dominant-baseline=\"central\" fill=\"#222222\">{}</text>\n",
                    escape(&label),
                    x = px(cx),
                    y = px(ly)
                );
            }
        }
    }
    // The zero line over the bars' feet, then the left edge.
    w!(
        out,
        "<path d=\"M{} {}V{}M{} {}H{}\" fill=\"none\" stroke=\"#555555\" stroke-width=\"1\"/>\n",
        px(l.left),
        px(l.top),
        px(l.bottom),
        px(l.left),
        px(zero),
        px(l.right)
    );
    draw_legend(&mut out, &l, &names, |out, i, lx, ly| {
        w!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"12\" fill=\"{}\"/>\n",
            px(lx + 2.0),
            px(ly - 6.0),
            colour(i)
        );
    });
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks() {
        let a = Axis::nice(0.0, 1.0, 5);
        assert_eq!(a.ticks, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(a.label(a.ticks[3]), "0.6");
        let b = Axis::nice(0.13, 0.87, 6);
        assert_eq!((b.lo, b.hi), (0.1, 0.9));
        let c = Axis::nice(-3.0, 47.0, 5);
        assert_eq!((c.lo, c.hi, c.decimals), (-10.0, 50.0, 0));
        let single = Axis::nice(2.0, 2.0, 5);
        assert!(single.lo < 2.0 && single.hi > 2.0);
    }

    #[test]
    fn compact_numbers() {
        assert_eq!(fmt_value(0.41234), "0.412");
        assert_eq!(fmt_value(12.345), "12.3");
        assert_eq!(fmt_value(0.5), "0.5");
        assert_eq!(fmt_value(1234.0), "1234");
        assert_eq!(fmt_value(0.000012), "1.2e-5");
        assert_eq!(fmt_value(-0.0), "0");
        assert_eq!(px(-0.001), "0");
        assert_eq!(px(12.5), "12.5");
    }
}
