//! Live metrics: production and canary side by side over the last five
//! minutes, drawn with plotters on canvases, with the current values and
//! the canary's difference under each chart.
//!
//! Each chart redraws when new seconds arrive (once a second) and when the
//! window is resized, but not while the tab is hidden; a canvas is sized to its box times the device pixel
//! ratio, so lines stay sharp on a tablet. What to draw comes from
//! [`crate::chart_model`]; this module only paints it.

use canary_shared::MetricsSnapshot;
use leptos::html::Canvas;
use leptos::prelude::*;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use crate::chart_model::{
    ChartKind, Percentile, WINDOW_SECS, axis_label, compare, has_points, lines, parse_hex_color,
    plot_range, time_label,
};
use crate::components::segmented::{Segmented, bind};

/// The card with the four charts.
#[component]
pub fn MetricsCard(metrics: ReadSignal<Option<MetricsSnapshot>>) -> impl IntoView {
    let percentile = RwSignal::new(Percentile::P95);
    let (percentile_index, pick_percentile) = bind(percentile, &Percentile::ALL);
    // Bumped on every resize (and rotation), so the charts redraw to fit.
    let resized = RwSignal::new(0u32);
    let listener = window_event_listener(leptos::ev::resize, move |_| {
        resized.update(|count| *count = count.wrapping_add(1));
    });
    on_cleanup(move || listener.remove());
    // A hidden tab draws nothing: the stream keeps running (the tab title and
    // the browser alerts need it) but the canvases wait, and catch up with
    // the latest five minutes when the tab is shown again.
    let page_visible = || document().visibility_state() == web_sys::VisibilityState::Visible;
    let visible = RwSignal::new(page_visible());
    let visibility = window_event_listener(leptos::ev::visibilitychange, move |_| {
        visible.set(page_visible());
    });
    on_cleanup(move || visibility.remove());

    let latency = Signal::derive(move || ChartKind::Latency(percentile.get()));
    // A memo, so the custom charts are built once, not on every second of data.
    let custom_count = Memo::new(move |_| {
        metrics.with(|metrics| {
            metrics
                .as_ref()
                .map_or(0, |metrics| metrics.canary.custom.len())
        })
    });
    let picker = view! {
        <Segmented
            labels=Percentile::ALL.iter().map(|choice| choice.label()).collect()
            selected=percentile_index
            on_select=pick_percentile
            label="Latency percentile"
            test_id=|label| format!("latency-{label}")
        />
    };
    view! {
        <section class="card card--metrics" aria-labelledby="metrics-title" data-testid="metrics-card">
            <div class="card__header card__header--wrap">
                <h2 class="card__title" id="metrics-title">"Live metrics"</h2>
                <span class="card__note">"last 5 minutes, per second"</span>
                <div class="legend" aria-hidden="true">
                    <span class="legend__item legend__item--production">"Production"</span>
                    <span class="legend__item legend__item--canary">"Canary"</span>
                </div>
            </div>
            <div class="charts">
                <Chart kind=latency metrics resized visible>{picker}</Chart>
                <Chart kind=Signal::stored(ChartKind::SuccessRate) metrics resized visible />
                <Chart kind=Signal::stored(ChartKind::ErrorRate) metrics resized visible />
                <Chart kind=Signal::stored(ChartKind::RequestRate) metrics resized visible />
                // The custom metrics from the config, one chart each, once the stream names them.
                {move || {
                    (0..custom_count.get().min(usize::from(u8::MAX)))
                        .map(|index| view! { <Chart kind=Signal::stored(ChartKind::Custom(index as u8)) metrics resized visible /> })
                        .collect_view()
                }}
            </div>
        </section>
    }
}

/// One chart with its title, controls, canvas and current values.
#[component]
fn Chart(
    kind: Signal<ChartKind>,
    metrics: ReadSignal<Option<MetricsSnapshot>>,
    resized: RwSignal<u32>,
    visible: RwSignal<bool>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let kind = kind.get();
        resized.track();
        // Returning before `metrics` is read means new seconds do not wake
        // this effect until the tab is visible again.
        if !visible.get() {
            return;
        }
        let Some(canvas) = canvas.get() else {
            return;
        };
        metrics.with(|metrics| {
            if let Err(err) = draw(&canvas, kind, metrics.as_ref()) {
                web_sys::console::warn_1(&format!("canary: cannot draw a chart: {err}").into());
            }
        });
    });
    let slug = kind.get_untracked().slug();
    let title = move || metrics.with(|metrics| kind.get().title_in(metrics.as_ref()));
    let has_data = move || {
        metrics.with(|metrics| {
            metrics
                .as_ref()
                .is_some_and(|metrics| has_points(metrics, kind.get()))
        })
    };
    let comparison = move || {
        metrics.with(|metrics| metrics.as_ref().map(|metrics| compare(metrics, kind.get())))
    };
    let value = move |pick: fn(&crate::chart_model::Comparison) -> String| {
        move || {
            comparison()
                .map(|comparison| pick(&comparison))
                .unwrap_or_else(|| "—".to_owned())
        }
    };
    let worse = move || comparison().is_some_and(|comparison| comparison.canary_worse);
    view! {
        <figure class="chart" data-testid=format!("chart-{slug}")>
            <figcaption class="chart__head">
                <span class="chart__title">{title}</span>
                {children.map(|children| children())}
            </figcaption>
            <div class="chart__plot">
                <canvas
                    node_ref=canvas
                    class="chart__canvas"
                    role="img"
                    aria-label=move || format!("{} of production and canary over the last five minutes", title())
                    data-testid=format!("chart-{slug}-canvas")
                ></canvas>
                <p class="chart__empty" hidden=has_data>"Waiting for traffic"</p>
            </div>
            <dl class="chart__values">
                <div class="chart__value chart__value--production">
                    <dt>"Production"</dt>
                    <dd data-testid=format!("chart-{slug}-production")>{value(|c| c.production.clone())}</dd>
                </div>
                <div class="chart__value chart__value--canary">
                    <dt>"Canary"</dt>
                    <dd data-testid=format!("chart-{slug}-canary")>{value(|c| c.canary.clone())}</dd>
                </div>
                <div class="chart__value chart__value--difference" class:chart__value--worse=worse>
                    <dt>"Difference"</dt>
                    <dd data-testid=format!("chart-{slug}-difference")>{value(|c| c.difference.clone())}</dd>
                </div>
            </dl>
        </figure>
    }
}

/// The console's colours, read from the stylesheet so the charts follow the
/// light or dark theme.
struct Theme {
    surface: RGBColor,
    grid: RGBColor,
    text: RGBColor,
    production: RGBColor,
    canary: RGBColor,
}

impl Theme {
    fn read() -> Theme {
        let style = document()
            .document_element()
            .and_then(|root| window().get_computed_style(&root).ok().flatten());
        let colour = |name: &str, fallback: (u8, u8, u8)| {
            let (red, green, blue) = style
                .as_ref()
                .and_then(|style| style.get_property_value(name).ok())
                .and_then(|value| parse_hex_color(&value))
                .unwrap_or(fallback);
            RGBColor(red, green, blue)
        };
        Theme {
            surface: colour("--surface", (255, 255, 255)),
            grid: colour("--border", (217, 222, 232)),
            text: colour("--text-muted", (91, 101, 120)),
            production: colour("--production", (47, 111, 222)),
            canary: colour("--canary", (217, 138, 0)),
        }
    }
}

/// Paints one chart; an error is plotters' (a canvas without a context).
fn draw(
    canvas: &HtmlCanvasElement,
    kind: ChartKind,
    metrics: Option<&MetricsSnapshot>,
) -> Result<(), String> {
    let ratio = window().device_pixel_ratio().max(1.0);
    let width = (f64::from(canvas.client_width()) * ratio).round() as u32;
    let height = (f64::from(canvas.client_height()) * ratio).round() as u32;
    if width == 0 || height == 0 {
        return Ok(()); // not on screen (a hidden tab or a collapsed panel)
    }
    if canvas.width() != width {
        canvas.set_width(width);
    }
    if canvas.height() != height {
        canvas.set_height(height);
    }
    let backend = CanvasBackend::with_canvas_object(canvas.clone())
        .ok_or_else(|| "no 2D context".to_owned())?;
    let root = backend.into_drawing_area();
    let theme = Theme::read();
    root.fill(&theme.surface).map_err(|err| err.to_string())?;

    let (production, canary) = metrics.map_or_else(Default::default, |metrics| {
        (
            lines(&metrics.production, metrics.at, kind),
            lines(&metrics.canary, metrics.at, kind),
        )
    });
    let (low, high) = plot_range(kind, &[&production, &canary]);
    let scaled = |pixels: f64| (pixels * ratio).round() as u32;
    let label_font = ("system-ui, sans-serif", 12.0 * ratio)
        .into_font()
        .color(&theme.text);
    let mut chart = ChartBuilder::on(&root)
        .margin_top(scaled(8.0))
        .margin_right(scaled(16.0))
        .x_label_area_size(scaled(22.0))
        .y_label_area_size(scaled(54.0))
        // Two seconds of room on the right, so the newest point is not cut in half.
        .build_cartesian_2d(-(WINDOW_SECS as f64)..2.0, low..high)
        .map_err(|err| err.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(theme.grid.stroke_width(scaled(1.0)))
        .light_line_style(TRANSPARENT)
        .axis_style(theme.grid.stroke_width(scaled(1.0)))
        .y_labels(4)
        // Time labels are drawn below, at whole minutes (plotters' own
        // choice would be decimal steps: −3:20, −1:40).
        .x_labels(0)
        .y_label_formatter(&|value| axis_label(kind, *value))
        .label_style(label_font.clone())
        .draw()
        .map_err(|err| err.to_string())?;
    let time_font = label_font.pos(Pos::new(HPos::Center, VPos::Top));
    // Every minute where there is room; every other one on a phone.
    let every = if f64::from(canvas.client_width()) < 480.0 {
        2
    } else {
        1
    };
    for minute in (0..=WINDOW_SECS / 60).step_by(every) {
        let seconds = -((minute * 60) as f64);
        let (x, y) = chart.backend_coord(&(seconds, low));
        root.draw(&Text::new(
            time_label(seconds),
            (x, y + scaled(5.0) as i32),
            time_font.clone(),
        ))
        .map_err(|err| err.to_string())?;
    }
    // Production wider, so where both sides agree (they often do: 100 %
    // success, 0 errors) its line still shows a clear band on each side of
    // the canary's, not a sliver lost to anti-aliasing.
    for (runs, colour, width, radius) in [
        (production, theme.production, 4.5, 6.0),
        (canary, theme.canary, 2.0, 3.0),
    ] {
        for run in runs {
            let (Some(first), Some(last)) = (run.first(), run.last()) else {
                continue;
            };
            let extent = chart.backend_coord(last).0 - chart.backend_coord(first).0;
            if extent < 2 * scaled(radius) as i32 {
                // A run too short to see as a line (a second on its own, or a
                // burst of two or three: a pixel each) is drawn as dots,
                // production's twice the canary's, so two equal values show
                // as a canary dot in a production ring; a line that short
                // would vanish under the canary's dot.
                chart
                    .draw_series(
                        run.iter()
                            .map(|point| Circle::new(*point, scaled(radius), colour.filled())),
                    )
                    .map_err(|err| err.to_string())?;
            } else {
                chart
                    .draw_series(LineSeries::new(run, colour.stroke_width(scaled(width))))
                    .map_err(|err| err.to_string())?;
            }
        }
    }
    root.present().map_err(|err| err.to_string())
}
