//! Pictures: the training curves as an SVG, like the report's figures; kernels and feature
//! maps as PNG grids; the confusion matrix as a heat map.

use std::fmt::Write;

use image::{GrayImage, Luma, Rgb, RgbImage};
use ndarray::{ArrayView2, ArrayView3};

use crate::train::EpochStats;
use crate::{Error, Result};

/// Width and height of one panel, in SVG pixels.
const PANEL: (f64, f64) = (360.0, 240.0);
/// Margin around each panel's plotting area.
const MARGIN: f64 = 40.0;

/// An SVG with two panels: mean loss per epoch (left) and accuracy per epoch (right): on the
/// training set when it was measured, else on the validation set.
///
/// ```
/// use lenet5::train::EpochStats;
/// let epoch = |epoch, loss, accuracy| EpochStats {
///     epoch, loss, accuracy: Some(accuracy), validation_accuracy: None, lr: 0.5, samples: 6000, seconds: 1.0,
/// };
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
    let measured_on_training = history.iter().any(|s| s.accuracy.is_some());
    let (title, accuracies): (_, Vec<f64>) = if measured_on_training {
        (
            "training accuracy",
            history
                .iter()
                .map(|s| s.accuracy.unwrap_or(f64::NAN))
                .collect(),
        )
    } else {
        (
            "validation accuracy",
            history
                .iter()
                .map(|s| s.validation_accuracy.unwrap_or(f64::NAN))
                .collect(),
        )
    };
    let max_loss = losses.iter().copied().fold(0.0, f64::max).max(1e-9);
    panel(&mut svg, 0.0, "loss", &losses, max_loss, "#c0392b");
    panel(&mut svg, w, title, &accuracies, 1.0, "#2471a3");
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
        .filter(|(_, v)| v.is_finite())
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

/// Pixels between two maps of a [`map_grid`].
const GAP: u32 = 2;
/// The largest picture drawn, in pixels on a side.
pub const MAX_PICTURE_SIDE: u32 = 16_384;

/// `cells` cells of `cell` pixels with `gap` pixels between them, if that makes a picture:
/// at least one pixel on a side, and at most [`MAX_PICTURE_SIDE`].
fn picture_side(cells: usize, cell: usize, gap: u32) -> Result<u32> {
    let bad = |reason: String| Error::InvalidArgument {
        what: "plot",
        reason,
    };
    if cells == 0 || cell == 0 {
        return Err(bad(format!(
            "{cells} cells of {cell} pixels make an empty picture"
        )));
    }
    let side = cells
        .checked_mul(cell)
        .and_then(|n| n.checked_add((cells - 1) * gap as usize))
        .filter(|&n| n <= MAX_PICTURE_SIDE as usize);
    side.map(|n| n as u32).ok_or_else(|| {
        bad(format!(
            "{cells} cells of {cell} pixels make a picture over {MAX_PICTURE_SIDE} pixels on a side"
        ))
    })
}

/// The maps `[N, H, W]` side by side, `per_row` to a row, each scaled up `zoom` times and
/// stretched so that its smallest value is black and its largest white.
///
/// ```
/// let maps = ndarray::Array3::from_shape_fn((6, 5, 5), |(n, j, k)| (n + j * k) as f32);
/// let grid = lenet5::plot::map_grid(maps.view(), 3, 4)?;
/// assert_eq!(grid.dimensions(), (3 * 20 + 2 * 2, 2 * 20 + 2));
/// # Ok::<(), lenet5::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] when the picture would be empty (no maps, empty maps, or a zoom
/// of 0) or over [`MAX_PICTURE_SIDE`] on a side.
pub fn map_grid(maps: ArrayView3<f32>, per_row: usize, zoom: u32) -> Result<GrayImage> {
    let (n, h, w) = maps.dim();
    let per_row = per_row.clamp(1, n.max(1));
    let rows = n.div_ceil(per_row);
    let zoom_by = |side: usize| side.saturating_mul(zoom as usize);
    let (width, height) = (
        picture_side(per_row, zoom_by(w), GAP)?,
        picture_side(rows, zoom_by(h), GAP)?,
    );
    let (cell_w, cell_h) = (w as u32 * zoom, h as u32 * zoom);
    let mut image = GrayImage::from_pixel(width, height, Luma([128]));
    for (i, map) in maps.outer_iter().enumerate() {
        let (lo, hi) = map
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = if hi > lo { hi - lo } else { 1.0 };
        let (x0, y0) = (
            (i % per_row) as u32 * (cell_w + GAP),
            (i / per_row) as u32 * (cell_h + GAP),
        );
        for y in 0..cell_h {
            for x in 0..cell_w {
                let v = map[[(y / zoom) as usize, (x / zoom) as usize]];
                image.put_pixel(
                    x0 + x,
                    y0 + y,
                    Luma([((v - lo) / range * 255.0).round() as u8]),
                );
            }
        }
    }
    Ok(image)
}

/// The confusion matrix `[true class, predicted class]` as a heat map of `cell`-pixel squares:
/// white for none of a row's images, deep blue for all of them.
///
/// # Errors
/// [`Error::InvalidArgument`] when the picture would be empty (no classes, or a `cell` of 0)
/// or over [`MAX_PICTURE_SIDE`] on a side.
pub fn confusion_heat_map(confusion: ArrayView2<usize>, cell: u32) -> Result<RgbImage> {
    let (rows, cols) = confusion.dim();
    let (width, height) = (
        picture_side(cols, cell as usize, 0)?,
        picture_side(rows, cell as usize, 0)?,
    );
    // each row's total in f64, which no count can overflow
    let totals: Vec<f64> = confusion
        .rows()
        .into_iter()
        .map(|row| row.iter().map(|&n| n as f64).sum::<f64>().max(1.0))
        .collect();
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let (row, col) = ((y / cell) as usize, (x / cell) as usize);
        // a square root so that a few confusions still show against the diagonal
        let share = (confusion[[row, col]] as f64 / totals[row]).sqrt();
        let fade = |full: f64| (255.0 - (255.0 - full) * share).round() as u8;
        Rgb([fade(8.0), fade(48.0), fade(107.0)])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_too_large_to_draw_are_errors() {
        let maps = ndarray::Array3::<f32>::zeros((6, 5, 5));
        assert!(map_grid(maps.view(), 3, u32::MAX).is_err());
        assert!(map_grid(maps.view(), 3, 2000).is_err());
        let confusion = ndarray::Array2::<usize>::eye(10);
        assert!(confusion_heat_map(confusion.view(), u32::MAX).is_err());
        assert_eq!(
            confusion_heat_map(confusion.view(), 3)
                .unwrap()
                .dimensions(),
            (30, 30)
        );
    }

    #[test]
    fn empty_pictures_are_errors() {
        let maps = ndarray::Array3::<f32>::zeros((6, 5, 5));
        assert!(map_grid(maps.view(), 3, 0).is_err());
        assert!(map_grid(ndarray::Array3::zeros((0, 5, 5)).view(), 3, 2).is_err());
        assert!(map_grid(ndarray::Array3::zeros((6, 0, 5)).view(), 3, 2).is_err());
        let confusion = ndarray::Array2::<usize>::eye(10);
        assert!(confusion_heat_map(confusion.view(), 0).is_err());
        assert!(confusion_heat_map(ndarray::Array2::zeros((0, 0)).view(), 3).is_err());
    }

    #[test]
    fn each_square_of_the_heat_map_shows_its_own_cell() {
        // rows 0 and 2 all on the diagonal, row 1 split between classes 0 and 1
        let confusion = ndarray::array![[4, 0, 0], [2, 2, 0], [0, 0, 7]];
        let picture = confusion_heat_map(confusion.view(), 2).unwrap();
        let white = Rgb([255, 255, 255]);
        let blue = Rgb([8, 48, 107]);
        for y in 0..6 {
            for x in 0..6 {
                let (row, col) = (y / 2, x / 2);
                let expected = match (row, col) {
                    (0, 0) | (2, 2) => blue,
                    (1, 0) | (1, 1) => {
                        // half the row: sqrt(1/2) of the way from white to blue
                        let fade =
                            |full: f64| (255.0 - (255.0 - full) * 0.5f64.sqrt()).round() as u8;
                        Rgb([fade(8.0), fade(48.0), fade(107.0)])
                    }
                    _ => white,
                };
                assert_eq!(*picture.get_pixel(x, y), expected, "pixel ({x}, {y})");
            }
        }
    }

    #[test]
    fn counts_too_large_to_sum_still_draw() {
        // a row whose total overflows usize: each cell is a third of it
        let confusion = ndarray::Array2::from_elem((3, 3), usize::MAX);
        let picture = confusion_heat_map(confusion.view(), 1).unwrap();
        let third = picture.get_pixel(0, 0);
        assert!(picture.pixels().all(|p| p == third));
        assert!(third[0] < 255 && third[0] > 8, "{third:?}");
    }
}
