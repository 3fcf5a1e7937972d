//! Pictures of training: the loss and accuracy curves as an SVG, like the report's figures.

use std::fmt::Write;

use crate::train::EpochStats;

/// Width and height of one panel, in SVG pixels.
const PANEL: (f64, f64) = (360.0, 240.0);
/// Margin around each panel's plotting area.
const MARGIN: f64 = 40.0;

/// An SVG with two panels: mean loss per epoch (left) and training accuracy per epoch (right).
///
/// ```
/// use lenet5::train::EpochStats;
/// let epoch = |epoch, loss, accuracy| EpochStats { epoch, loss, accuracy, lr: 0.5, samples: 6000, seconds: 1.0 };
/// let svg = lenet5::plot::training_curves_svg(&[epoch(1, 2.7, 0.1), epoch(2, 0.7, 0.8)]);
/// assert!(svg.starts_with("<svg") && svg.contains("polyline"));
/// ```
pub fn training_curves_svg(history: &[EpochStats]) -> String {
    let (w, h) = PANEL;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        2.0 * w
    );
    let losses: Vec<f64> = history.iter().map(|s| s.loss).collect();
    let accuracies: Vec<f64> = history.iter().map(|s| s.accuracy).collect();
    let max_loss = losses.iter().copied().fold(0.0, f64::max).max(1e-9);
    panel(&mut svg, 0.0, "loss", &losses, max_loss, "#c0392b");
    panel(
        &mut svg,
        w,
        "training accuracy",
        &accuracies,
        1.0,
        "#2471a3",
    );
    svg.push_str("</svg>\n");
    svg
}

/// One panel at x offset `left`: axes, the title, the y range `[0, top]` and the curve.
fn panel(svg: &mut String, left: f64, title: &str, values: &[f64], top: f64, colour: &str) {
    let (w, h) = PANEL;
    let (x0, x1, y0, y1) = (
        left + MARGIN,
        left + w - MARGIN / 2.0,
        h - MARGIN,
        MARGIN / 2.0,
    );
    let steps = values.len().saturating_sub(1).max(1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                x0 + (x1 - x0) * i as f64 / steps,
                y0 - (y0 - y1) * v / top
            )
        })
        .collect();
    let _ = writeln!(
        svg,
        "<path d=\"M{x0},{y1} V{y0} H{x1}\" stroke=\"black\" fill=\"none\"/>\n\
         <text x=\"{}\" y=\"14\" text-anchor=\"middle\">{title}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{top:.2}</text>\n\
         <text x=\"{}\" y=\"{y0}\" text-anchor=\"end\">0</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">epoch 1..{}</text>\n\
         <polyline points=\"{}\" stroke=\"{colour}\" stroke-width=\"2\" fill=\"none\"/>",
        (x0 + x1) / 2.0,
        x0 - 4.0,
        y1 + 4.0,
        x0 - 4.0,
        (x0 + x1) / 2.0,
        h - 12.0,
        values.len(),
        points.join(" ")
    );
}
