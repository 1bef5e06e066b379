//! SVG input, rendered with resvg, behind checks that resvg itself does not make.
//!
//! resvg aborts the whole process (an allocation failure, not a catchable panic) on a huge canvas
//! and overflows the stack on deep nesting, and `<use>` elements that reference groups of `<use>`
//! elements expand exponentially ("billion laughs" without entities). So, before usvg builds its
//! tree, the XML is parsed once with a node limit and walked to compute the document's size and
//! depth *after* reference expansion; the canvas is sized from the parsed tree and checked before
//! the pixmap is allocated; rendering runs on its own thread and is abandoned after a deadline.
//! No external reference is ever resolved: no files, no URLs, no embedded images.

use std::collections::HashMap;

use image::DynamicImage;
use resvg::tiny_skia;
use resvg::usvg::{self, roxmltree};

use crate::decode::{DecodeHint, Decoded, SourceFormat, check_pixels, target_size};
use crate::{ImageError, Limits};

/// True when the bytes start like an XML document with an `<svg` element near the top.
pub(crate) fn looks_like_svg(input: &[u8]) -> bool {
    let head = &input[..input.len().min(4096)];
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    trimmed.starts_with('<') && text.contains("<svg")
}

/// The configured font set ([`crate::FontSet`]), never the machine's own fonts.
fn options(limits: &Limits) -> usvg::Options<'static> {
    usvg::Options {
        resources_dir: None,
        fontdb: limits.fonts.database(),
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    }
}

pub(crate) fn render(
    input: &[u8],
    limits: &Limits,
    hint: Option<DecodeHint>,
) -> Result<Decoded, ImageError> {
    let text = std::str::from_utf8(input)
        .map_err(|e| ImageError::SvgLimit(format!("not utf-8 text: {e}")))?;
    let xml_options = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: u32::try_from(limits.max_svg_nodes).unwrap_or(u32::MAX),
        ..roxmltree::ParsingOptions::default()
    };
    let document = roxmltree::Document::parse_with_options(text, xml_options).map_err(|e| {
        ImageError::Corrupt {
            format: "svg",
            message: e.to_string().to_lowercase(),
        }
    })?;
    check_structure(&document, limits)?;
    let tree =
        usvg::Tree::from_xmltree(&document, &options(limits)).map_err(|e| ImageError::Corrupt {
            format: "svg",
            message: e.to_string().to_lowercase(),
        })?;

    let size = tree.size();
    let (width, height) = (size.width().ceil() as u32, size.height().ceil() as u32);
    check_pixels(u64::from(width), u64::from(height), limits.max_pixels)?;
    let (out_w, out_h) = match hint {
        // Vector input is rendered straight at the size the first resize asks for.
        Some(hint) => target_size(width, height, hint),
        None => (width, height),
    };
    check_filters(tree.root(), f64::from(out_w) / f64::from(width), limits)?;
    let transform =
        tiny_skia::Transform::from_scale(out_w as f32 / size.width(), out_h as f32 / size.height());
    let pixmap = render_with_deadline(tree, transform, out_w, out_h, limits)?;
    let rgba: Vec<u8> = pixmap
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect();
    let image =
        image::RgbaImage::from_raw(out_w, out_h, rgba).ok_or_else(|| ImageError::Internal {
            message: "svg pixmap has the wrong size".into(),
        })?;
    Ok(Decoded {
        source_width: width,
        source_height: height,
        ..Decoded::still(DynamicImage::ImageRgba8(image), SourceFormat::Svg)
    })
}

fn render_with_deadline(
    tree: usvg::Tree,
    transform: tiny_skia::Transform,
    width: u32,
    height: u32,
    limits: &Limits,
) -> Result<tiny_skia::Pixmap, ImageError> {
    let mut pixmap = tiny_skia::Pixmap::new(width, height).ok_or_else(|| {
        ImageError::SvgLimit(format!("cannot allocate a {width}x{height} canvas"))
    })?;
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("svg-render".into())
        .stack_size(8 << 20)
        .spawn(move || {
            resvg::render(&tree, transform, &mut pixmap.as_mut());
            let _ = sender.send(pixmap);
        });
    if let Err(e) = spawned {
        return Err(ImageError::Internal {
            message: format!("cannot start the svg render thread: {e}"),
        });
    }
    // On timeout the render thread is abandoned; it finishes on its own (the structural limits
    // bound how long that can be) and its result is dropped.
    receiver
        .recv_timeout(limits.svg_render_timeout)
        .map_err(|_| ImageError::SvgTimeout {
            seconds: limits.svg_render_timeout.as_secs(),
        })
}

/// Filters draw into an offscreen region of their own size; bound it like a canvas.
fn check_filters(group: &usvg::Group, scale: f64, limits: &Limits) -> Result<(), ImageError> {
    for filter in group.filters() {
        let rect = filter.rect();
        let w = (f64::from(rect.width()) * scale).ceil().max(0.0) as u64;
        let h = (f64::from(rect.height()) * scale).ceil().max(0.0) as u64;
        if w.saturating_mul(h) > limits.max_pixels {
            return Err(ImageError::SvgLimit(format!(
                "filter region {w}x{h} is more than {} pixels",
                limits.max_pixels
            )));
        }
    }
    for child in group.children() {
        if let usvg::Node::Group(g) = child {
            check_filters(g, scale, limits)?;
        }
    }
    Ok(())
}

/// Computes the element count and depth the document would have with every internal reference
/// (`href="#id"`, `url(#id)`) expanded, without recursion, and rejects reference cycles.
fn check_structure(document: &roxmltree::Document, limits: &Limits) -> Result<(), ImageError> {
    let ids: HashMap<&str, roxmltree::NodeId> = document
        .descendants()
        .filter_map(|n| n.attribute("id").map(|id| (id, n.id())))
        .collect();
    // Edges of the expanded graph: element children and referenced elements.
    let successors = |node: roxmltree::Node| -> Vec<roxmltree::NodeId> {
        let mut next: Vec<roxmltree::NodeId> = node
            .children()
            .filter(|c| c.is_element())
            .map(|c| c.id())
            .collect();
        for attribute in node.attributes() {
            for target in references(attribute.value()) {
                if let Some(id) = ids.get(target) {
                    next.push(*id);
                }
            }
        }
        next
    };

    #[derive(Clone, Copy)]
    enum State {
        InProgress,
        Done { nodes: u64, depth: usize },
    }
    let mut state: HashMap<roxmltree::NodeId, State> = HashMap::new();
    let root = document.root_element();
    let mut stack = vec![(root.id(), false)];
    while let Some((id, children_done)) = stack.pop() {
        let node = document.get_node(id).ok_or_else(|| ImageError::Internal {
            message: "svg node id out of range".into(),
        })?;
        if children_done {
            let (mut nodes, mut depth) = (1u64, 0usize);
            for child in successors(node) {
                if let Some(State::Done { nodes: n, depth: d }) = state.get(&child) {
                    nodes = nodes.saturating_add(*n);
                    depth = depth.max(*d);
                }
            }
            let depth = depth + 1;
            if nodes > limits.max_svg_nodes {
                return Err(ImageError::SvgLimit(format!(
                    "expands to more than {} elements",
                    limits.max_svg_nodes
                )));
            }
            if depth > limits.max_svg_depth {
                return Err(ImageError::SvgLimit(format!(
                    "nesting deeper than {} elements",
                    limits.max_svg_depth
                )));
            }
            state.insert(id, State::Done { nodes, depth });
            continue;
        }
        match state.get(&id) {
            Some(State::Done { .. }) => continue,
            Some(State::InProgress) => {
                return Err(ImageError::SvgLimit(format!(
                    "reference cycle through <{}>",
                    node.tag_name().name()
                )));
            }
            None => {}
        }
        state.insert(id, State::InProgress);
        stack.push((id, true));
        for child in successors(node) {
            match state.get(&child) {
                Some(State::Done { .. }) => {}
                Some(State::InProgress) => {
                    return Err(ImageError::SvgLimit(format!(
                        "reference cycle through <{}>",
                        node.tag_name().name()
                    )));
                }
                None => stack.push((child, false)),
            }
        }
        if stack.len() > 4 * limits.max_svg_nodes as usize {
            return Err(ImageError::SvgLimit("too many references".into()));
        }
    }
    Ok(())
}

/// The ids an attribute value refers to: `#id` (an href) or every `url(#id)` in it.
fn references(value: &str) -> Vec<&str> {
    if let Some(id) = value.strip_prefix('#') {
        return vec![id.trim()];
    }
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("url(#") {
        let after = &rest[start + 5..];
        match after.find(')') {
            Some(end) => {
                found.push(after[..end].trim().trim_matches(|c| c == '"' || c == '\''));
                rest = &after[end..];
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(svg: &str) -> Result<(u32, u32), String> {
        render(svg.as_bytes(), &Limits::default(), None)
            .map(|d| (d.image.width(), d.image.height()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn renders_a_simple_document() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">
            <rect width="40" height="30" fill="red"/></svg>"#;
        assert_eq!(check(svg), Ok((40, 30)));
        let decoded = render(svg.as_bytes(), &Limits::default(), None).unwrap();
        assert_eq!(decoded.image.to_rgba8().get_pixel(5, 5).0, [255, 0, 0, 255]);
    }

    #[test]
    fn rejects_a_huge_canvas_before_allocating() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>"#;
        let err = check(svg).unwrap_err();
        assert!(
            err.contains("more than the limit of 50000000 pixels"),
            "{err}"
        );
    }

    #[test]
    fn rejects_deep_nesting() {
        let svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">{}{}</svg>"#,
            "<g>".repeat(5000),
            "</g>".repeat(5000)
        );
        let err = check(&svg).unwrap_err();
        assert!(err.contains("nesting deeper than 128"), "{err}");
    }

    #[test]
    fn rejects_exponential_use_expansion() {
        let mut svg = String::from(
            r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><defs><rect id="l0" width="1" height="1"/>"#,
        );
        for level in 1..20 {
            svg.push_str(&format!(r#"<g id="l{level}">"#));
            for _ in 0..10 {
                svg.push_str(&format!(r##"<use xlink:href="#l{}"/>"##, level - 1));
            }
            svg.push_str("</g>");
        }
        svg.push_str(r##"</defs><use xlink:href="#l19"/></svg>"##);
        let err = check(&svg).unwrap_err();
        assert!(
            err.contains("expands to more than 100000 elements"),
            "{err}"
        );
    }

    #[test]
    fn rejects_reference_cycles() {
        let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">
            <g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>"##;
        let err = check(svg).unwrap_err();
        assert!(err.contains("reference cycle"), "{err}");
    }

    #[test]
    fn never_reads_external_files() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">
            <image href="/etc/passwd" width="20" height="20"/>
            <image href="file:///root/secret.png" width="20" height="20"/></svg>"#;
        let decoded = render(svg.as_bytes(), &Limits::default(), None).unwrap();
        assert!(decoded.image.to_rgba8().pixels().all(|p| p.0[3] == 0));
    }

    #[test]
    fn renders_at_the_hinted_size() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="500"/>"#;
        let hint = DecodeHint {
            width: 100,
            height: 100,
            mode: opossum_ops::ResizeMode::Fit,
            enlarge: false,
        };
        let decoded = render(svg.as_bytes(), &Limits::default(), Some(hint)).unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (100, 50));
        assert_eq!((decoded.source_width, decoded.source_height), (1000, 500));
    }

    #[test]
    fn text_is_drawn_with_the_configured_fonts_and_only_with_them() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40">
            <rect width="120" height="40" fill="white"/>
            <text x="4" y="30" font-family="sans-serif" font-size="28" fill="black">Opossum</text>
            </svg>"#;
        let chain = opossum_ops::Chain::parse("format:png").unwrap();
        let dark = |limits: &Limits| {
            let output = crate::process(svg, &chain, limits).unwrap();
            let image = image::load_from_memory(&output.bytes).unwrap().to_luma8();
            image.pixels().filter(|p| p.0[0] < 128).count()
        };
        let with_fonts = Limits::default();
        assert!(
            !with_fonts.fonts.is_empty(),
            "no fonts in {}: apt-get install fonts-dejavu-core",
            crate::DEFAULT_FONTS_DIR
        );
        assert!(dark(&with_fonts) > 100, "the text was not drawn");
        let without = Limits {
            fonts: crate::FontSet::empty(),
            ..Limits::default()
        };
        assert_eq!(
            dark(&without),
            0,
            "text drawn without fonts: system fonts leaked in"
        );
    }
}
