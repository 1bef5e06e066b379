//! Property tests of the operation model: normalisation is idempotent, one request spelled many
//! ways gets one key, and different requests get different keys.

use opossum_ops::{
    Chain, Chroma, Colour, Encoding, EncodingDefaults, Extent, FlipAxis, Gravity, Milli, Operation,
    Options, OutputFormat, ResizeMode, Rotation, derive_key,
};
use proptest::prelude::*;

fn colour() -> impl Strategy<Value = Colour> {
    prop_oneof![
        Just(Colour::TRANSPARENT),
        any::<[u8; 3]>().prop_map(|[r, g, b]| Colour::new([r, g, b, 255])),
        any::<[u8; 4]>().prop_map(Colour::new),
    ]
}

fn extent() -> impl Strategy<Value = Extent> {
    prop_oneof![
        (1u32..500).prop_map(Extent::Pixels),
        (1u32..1000).prop_map(|m| Extent::Fraction(Milli(m))),
    ]
}

fn pixel_op() -> impl Strategy<Value = Operation> {
    let mode = prop_oneof![
        Just(ResizeMode::Fit),
        Just(ResizeMode::Fill),
        Just(ResizeMode::Force),
        colour().prop_map(|background| ResizeMode::Contain { background }),
    ];
    let gravity = prop_oneof![
        Just(Gravity::Centre),
        Just(Gravity::North),
        Just(Gravity::SouthWest),
        Just(Gravity::East),
        Just(Gravity::Smart),
        (0u32..=1000, 0u32..=1000).prop_map(|(x, y)| Gravity::Focus {
            x: Milli(x),
            y: Milli(y)
        }),
    ];
    let geometry = prop_oneof![
        (1u32..4000, 1u32..4000, mode, gravity.clone(), any::<bool>()).prop_map(
            |(width, height, mode, gravity, enlarge)| Operation::Resize {
                width,
                height,
                mode,
                // a gravity belongs to `fill` alone; `force` always scales to the box
                gravity: if mode == ResizeMode::Fill {
                    gravity
                } else {
                    Gravity::Centre
                },
                enlarge: enlarge && mode != ResizeMode::Force,
            }
        ),
        (1u32..4000).prop_map(|size| Operation::Thumbnail { size }),
        (
            extent(),
            extent(),
            proptest::option::of((0u32..100, 0u32..100))
        )
            .prop_map(|(width, height, origin)| Operation::Crop {
                width,
                height,
                origin,
                gravity: Gravity::Centre,
            }),
        (extent(), extent(), gravity).prop_map(|(width, height, gravity)| Operation::Crop {
            width,
            height,
            origin: None,
            gravity,
        }),
        prop_oneof![
            Just(Rotation::Deg90),
            Just(Rotation::Deg180),
            Just(Rotation::Deg270)
        ]
        .prop_map(Operation::Rotate),
        (1u32..360_000, colour())
            .prop_filter("a right angle is `Rotate`", |(d, _)| d % 90_000 != 0)
            .prop_map(|(d, background)| Operation::RotateBy {
                degrees: Milli(d),
                background
            }),
        prop_oneof![Just(FlipAxis::Horizontal), Just(FlipAxis::Vertical)].prop_map(Operation::Flip),
        (0u32..50, 0u32..50, 0u32..50, 0u32..50, colour()).prop_map(
            |(top, right, bottom, left, colour)| Operation::Pad {
                top,
                right,
                bottom,
                left,
                colour
            }
        ),
        colour().prop_map(Operation::Background),
        any::<u8>().prop_map(|threshold| Operation::Trim { threshold }),
        (0u32..200).prop_map(Operation::Round),
    ];
    let filters = prop_oneof![
        Just(Operation::Grayscale),
        (1u32..100_000).prop_map(|m| Operation::Blur { sigma: Milli(m) }),
        (1u32..10_000).prop_map(|m| Operation::Sharpen { sigma: Milli(m) }),
        (-100i32..=100).prop_map(Operation::Brightness),
        (-100i32..=100).prop_map(Operation::Contrast),
        (-100i32..=100).prop_map(Operation::Saturation),
        (1u32..=1024).prop_map(Operation::Pixelate),
        colour().prop_map(Operation::Tint),
        (100u32..=10_000).prop_map(|g| Operation::Gamma(Milli(g))),
        Just(Operation::Normalize),
        (0u32..=20).prop_map(Operation::Median),
        (0u32..=10_000, 0u32..=10_000, 0u32..360).prop_map(|(b, s, hue)| Operation::Modulate {
            brightness: Milli(b),
            saturation: Milli(s),
            hue
        }),
    ];
    prop_oneof![geometry, filters]
}

fn terminal_op() -> impl Strategy<Value = Option<Operation>> {
    let format = prop_oneof![
        (
            1u8..=100,
            proptest::option::of(any::<bool>()),
            proptest::option::of(prop_oneof![Just(Chroma::C420), Just(Chroma::C444)])
        )
            .prop_map(|(q, progressive, chroma)| Encoding {
                quality: Some(q),
                progressive,
                chroma,
                ..Encoding::default_for(OutputFormat::Jpeg)
            }),
        (
            proptest::option::of(1u8..=100),
            proptest::option::of(0u8..=6)
        )
            .prop_map(|(quality, effort)| Encoding {
                quality,
                effort,
                ..Encoding::default_for(OutputFormat::Webp)
            }),
        (
            proptest::option::of(1u8..=100),
            proptest::option::of(0u8..=10)
        )
            .prop_map(|(quality, speed)| Encoding {
                quality,
                speed,
                ..Encoding::default_for(OutputFormat::Avif)
            }),
        Just(Encoding {
            lossless: true,
            ..Encoding::default_for(OutputFormat::Webp)
        }),
        (
            proptest::option::of(2u16..=256),
            proptest::option::of(0u8..=6)
        )
            .prop_map(|(palette, compression)| Encoding {
                palette,
                compression,
                ..Encoding::default_for(OutputFormat::Png)
            }),
        Just(Encoding::default_for(OutputFormat::Png)),
        Just(Encoding::default_for(OutputFormat::Gif)),
        Just(Encoding::default_for(OutputFormat::Svg)),
    ];
    prop_oneof![
        Just(None),
        format.prop_map(|e| Some(Operation::Format(e))),
        Just(Some(Operation::Analyze)),
    ]
}

fn chain() -> impl Strategy<Value = Chain> {
    (proptest::collection::vec(pixel_op(), 0..8), terminal_op()).prop_map(|(mut ops, last)| {
        ops.extend(last);
        Chain::from_operations(ops).expect("generated operations are valid")
    })
}

/// Another spelling of the same operation: aliases, omitted defaults, odd case and padding.
fn respell(op: &Operation, variant: u8) -> String {
    let pad = if variant.is_multiple_of(2) { "" } else { " " };
    match *op {
        Operation::Resize {
            width,
            height,
            mode: ResizeMode::Fit,
            enlarge: false,
            ..
        } if variant.is_multiple_of(3) => format!("{pad}Resize:{width}:{height}{pad}"),
        Operation::Resize {
            width,
            height,
            mode: ResizeMode::Fill,
            gravity: Gravity::Centre,
            enlarge: false,
        } if variant.is_multiple_of(2) => format!("resize:{width}:{height}:cover:center"),
        Operation::Resize {
            width,
            height,
            mode: ResizeMode::Fill,
            gravity,
            enlarge,
        } => format!(
            "resize:{width}:{height}:cover:{}{}",
            gravity.to_string().to_uppercase(),
            if enlarge { ":ENLARGE" } else { ":false" }
        ),
        Operation::Resize {
            width,
            height,
            mode: ResizeMode::Contain { background },
            enlarge,
            ..
        } if variant.is_multiple_of(2) => format!(
            "resize:{width}:{height}:letterbox{}{}",
            background_rgba(background),
            if enlarge { ":true" } else { "" }
        ),
        Operation::Pad {
            top,
            right,
            bottom,
            left,
            colour,
        } if top == bottom && right == left => {
            format!("padding:{top}:{right}{}{pad}", background_rgba(colour))
        }
        Operation::Background(colour) => format!("bg{}", background_rgba(colour)),
        Operation::RotateBy {
            degrees,
            background,
        } => format!(
            "rotate:{}{}",
            f64::from(degrees.0) / 1000.0 - 360.0,
            background_rgba(background)
        ),
        Operation::Trim { threshold: 10 } if variant.is_multiple_of(2) => "trim".into(),
        Operation::Modulate {
            brightness,
            saturation,
            hue,
        } => format!(
            "modulate:{brightness}:{saturation}:{}",
            i64::from(hue) - 720
        ),
        Operation::Normalize => "normalise".into(),
        Operation::Crop {
            width,
            height,
            origin: None,
            gravity: Gravity::Focus { x, y },
        } => format!("crop:{width}:{height}:FOCUS:{x}:{y}{pad}"),
        Operation::Rotate(r) => {
            let degrees = match r {
                Rotation::Deg90 => -270,
                Rotation::Deg180 => 540,
                Rotation::Deg270 => -90,
            };
            format!("rotate:{degrees}")
        }
        Operation::Flip(FlipAxis::Horizontal) if variant.is_multiple_of(2) => "flip".into(),
        Operation::Flip(FlipAxis::Vertical) => "flip:vertical".into(),
        Operation::Grayscale => ["greyscale", "GRAY", "grayscale"][variant as usize % 3].into(),
        Operation::Blur { sigma } => format!("blur:{}.{:03}0", sigma.0 / 1000, sigma.0 % 1000),
        Operation::Format(
            e @ Encoding {
                format: OutputFormat::Jpeg,
                quality: Some(q),
                ..
            },
        ) => {
            // Options in another order, the chroma as a named option, progressive spelled out.
            let mut text = format!("format:JPG:{q}");
            if let Some(chroma) = e.chroma {
                text.push_str(&format!(":chroma={}", chroma.name()));
            }
            if let Some(progressive) = e.progressive {
                text.push_str(&format!(":progressive={progressive}"));
            }
            text
        }
        Operation::Format(Encoding {
            format: OutputFormat::Webp,
            lossless: true,
            ..
        }) => "format:webp::true".into(),
        Operation::Format(
            e @ Encoding {
                format: OutputFormat::Png,
                palette: Some(256),
                ..
            },
        ) => match e.compression {
            Some(level) => format!("format:png:Compression={level}:palette=256"),
            None => "format:png:palette=256".into(),
        },
        Operation::Analyze => "analyse".into(),
        _ => op.to_string(),
    }
}

/// A colour spelled with all eight digits (the canonical form drops an opaque alpha).
fn background_rgba(colour: Colour) -> String {
    let [r, g, b, a] = colour.rgba();
    format!(":{r:02X}{g:02X}{b:02x}{a:02X}")
}

/// The JSON spelling, with named arguments (numbers as JSON numbers).
fn to_json(chain: &Chain) -> String {
    use serde_json::{Value, json};
    let number = |text: String| -> Value { text.parse::<f64>().map_or(json!(text), |n| json!(n)) };
    let items: Vec<Value> = chain
        .ops()
        .iter()
        .map(|op| {
            let mut object = match *op {
                Operation::Resize {
                    width,
                    height,
                    mode,
                    gravity,
                    enlarge,
                } => {
                    let mut object = json!({"width": width, "height": height, "enlarge": enlarge});
                    let name = op.to_string().split(':').nth(3).unwrap_or_default().to_string();
                    object["mode"] = json!(name);
                    if let ResizeMode::Contain { background } = mode {
                        object["background"] = json!(background.to_string());
                    }
                    object["gravity"] = json!(gravity.to_string());
                    object
                }
                Operation::Crop {
                    width,
                    height,
                    origin,
                    gravity,
                } => {
                    let mut object = json!({
                        "width": number(width.to_string()),
                        "height": number(height.to_string()),
                    });
                    match origin {
                        Some((x, y)) => (object["x"], object["y"]) = (json!(x), json!(y)),
                        None => object["gravity"] = json!(gravity.to_string()),
                    }
                    object
                }
                Operation::RotateBy {
                    degrees,
                    background,
                } => json!({"degrees": number(degrees.to_string()), "background": background.to_string()}),
                Operation::Pad {
                    top,
                    right,
                    bottom,
                    left,
                    colour,
                } => json!({"top": top, "right": right, "bottom": bottom, "left": left, "color": colour.to_string()}),
                Operation::Background(colour) | Operation::Tint(colour) => {
                    json!({"color": colour.to_string()})
                }
                Operation::Modulate {
                    brightness,
                    saturation,
                    hue,
                } => json!({
                    "brightness": number(brightness.to_string()),
                    "saturation": number(saturation.to_string()),
                    "hue": hue,
                }),
                Operation::Format(e) => {
                    let mut object = json!({"format": e.format.name()});
                    let fields = [
                        ("quality", e.quality.map(|v| json!(v))),
                        ("lossless", e.lossless.then_some(json!(true))),
                        ("progressive", e.progressive.map(|v| json!(v))),
                        ("chroma", e.chroma.map(|c| json!(c.name()))),
                        ("palette", e.palette.map(|v| json!(v))),
                        ("compression", e.compression.map(|v| json!(v))),
                        ("effort", e.effort.map(|v| json!(v))),
                        ("speed", e.speed.map(|v| json!(v))),
                    ];
                    for (name, value) in fields {
                        if let Some(value) = value {
                            object[name] = value;
                        }
                    }
                    object
                }
                _ => {
                    // One positional argument or none: the table's name for it.
                    let text = op.to_string();
                    let mut parts: Vec<String> = text.split(':').skip(1).map(String::from).collect();
                    let names: &[&str] = match op.name() {
                        "thumbnail" | "pixelate" => &["size"],
                        "rotate" => &["degrees"],
                        "flip" => &["axis"],
                        "blur" | "sharpen" => &["sigma"],
                        "brightness" | "contrast" | "saturation" => &["value"],
                        "trim" => &["threshold"],
                        "gamma" => &["gamma"],
                        "median" | "round" => &["radius"],
                        _ => &[],
                    };
                    let mut object = json!({});
                    for (name, value) in names.iter().zip(parts.drain(..)) {
                        object[*name] = number(value);
                    }
                    object
                }
            };
            object["op"] = json!(op.name());
            object
        })
        .collect();
    Value::Array(items).to_string()
}

fn key_of(chain: &Chain) -> String {
    derive_key(
        "opossum",
        "1",
        "img/1.jpg",
        chain,
        &Options::new(),
        &EncodingDefaults::default(),
    )
    .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalisation_is_idempotent(chain in chain()) {
        if !chain.is_empty() {
            let again = Chain::parse(&chain.to_string()).unwrap();
            prop_assert_eq!(&again, &chain);
            prop_assert_eq!(again.to_string(), chain.to_string());
        }
        let rebuilt = Chain::from_operations(chain.ops().to_vec()).unwrap();
        prop_assert_eq!(rebuilt, chain);
    }

    #[test]
    fn equal_requests_get_equal_keys(chain in chain(), variant in 0u8..6) {
        prop_assume!(!chain.is_empty());
        let respelled: Vec<String> = chain.ops().iter().map(|op| respell(op, variant)).collect();
        let from_text = Chain::parse(&respelled.join(",")).unwrap();
        prop_assert_eq!(key_of(&from_text), key_of(&chain), "respelled as {:?}", respelled);
        let from_json = Chain::from_json(&to_json(&chain)).unwrap();
        prop_assert_eq!(key_of(&from_json), key_of(&chain));
    }

    #[test]
    fn different_requests_get_different_keys(a in chain(), b in chain()) {
        prop_assume!(a != b);
        prop_assert_ne!(key_of(&a), key_of(&b));
    }
}
