//! Property tests of the operation model: normalisation is idempotent, one request spelled many
//! ways gets one key, and different requests get different keys.

use opossum_ops::{
    Chain, Encoding, FlipAxis, Gravity, Milli, Operation, Options, OutputFormat, ResizeMode,
    Rotation, derive_key,
};
use proptest::prelude::*;

fn pixel_op() -> impl Strategy<Value = Operation> {
    let mode = prop_oneof![
        Just(ResizeMode::Fit),
        Just(ResizeMode::Fill),
        Just(ResizeMode::Force)
    ];
    let gravity = prop_oneof![
        Just(Gravity::Centre),
        Just(Gravity::North),
        Just(Gravity::SouthWest),
        Just(Gravity::East),
        (0u32..=1000, 0u32..=1000).prop_map(|(x, y)| Gravity::Focus {
            x: Milli(x),
            y: Milli(y)
        }),
    ];
    prop_oneof![
        (1u32..4000, 1u32..4000, mode, gravity.clone()).prop_map(
            |(width, height, mode, gravity)| Operation::Resize {
                width,
                height,
                mode,
                // a gravity belongs to `fill` alone
                gravity: if mode == ResizeMode::Fill {
                    gravity
                } else {
                    Gravity::Centre
                },
            }
        ),
        (1u32..4000).prop_map(|size| Operation::Thumbnail { size }),
        (
            1u32..500,
            1u32..500,
            proptest::option::of((0u32..100, 0u32..100))
        )
            .prop_map(|(width, height, origin)| Operation::Crop {
                width,
                height,
                origin,
                gravity: Gravity::Centre,
            }),
        (1u32..500, 1u32..500, gravity).prop_map(|(width, height, gravity)| Operation::Crop {
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
        prop_oneof![Just(FlipAxis::Horizontal), Just(FlipAxis::Vertical)].prop_map(Operation::Flip),
        Just(Operation::Grayscale),
        (1u32..100_000).prop_map(|m| Operation::Blur { sigma: Milli(m) }),
        (1u32..10_000).prop_map(|m| Operation::Sharpen { sigma: Milli(m) }),
        (-100i32..=100).prop_map(Operation::Brightness),
        (-100i32..=100).prop_map(Operation::Contrast),
        (-100i32..=100).prop_map(Operation::Saturation),
    ]
}

fn terminal_op() -> impl Strategy<Value = Option<Operation>> {
    let format = prop_oneof![
        (1u8..=100).prop_map(|q| Encoding {
            format: OutputFormat::Jpeg,
            quality: Some(q)
        }),
        (1u8..=100).prop_map(|q| Encoding {
            format: OutputFormat::Webp,
            quality: Some(q)
        }),
        (1u8..=100).prop_map(|q| Encoding {
            format: OutputFormat::Avif,
            quality: Some(q)
        }),
        Just(Encoding {
            format: OutputFormat::Webp,
            quality: None
        }),
        Just(Encoding::default_for(OutputFormat::Png)),
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
            ..
        } if variant.is_multiple_of(3) => format!("{pad}Resize:{width}:{height}{pad}"),
        Operation::Resize {
            width,
            height,
            mode: ResizeMode::Fill,
            gravity: Gravity::Centre,
        } if variant.is_multiple_of(2) => format!("resize:{width}:{height}:cover:center"),
        Operation::Resize {
            width,
            height,
            mode: ResizeMode::Fill,
            gravity,
        } => format!(
            "resize:{width}:{height}:cover:{}",
            gravity.to_string().to_uppercase()
        ),
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
        Operation::Format(Encoding {
            format: OutputFormat::Jpeg,
            quality: Some(80),
        }) => "format:jpg".into(),
        Operation::Format(Encoding {
            format: OutputFormat::Jpeg,
            quality: Some(q),
        }) => format!("format:JPG:{q}"),
        Operation::Format(Encoding {
            format: OutputFormat::Webp,
            quality: None,
        }) => "format:webp::true".into(),
        Operation::Analyze => "analyse".into(),
        _ => op.to_string(),
    }
}

/// The JSON spelling, with named arguments.
fn to_json(chain: &Chain) -> String {
    let items: Vec<serde_json::Value> = chain
        .ops()
        .iter()
        .map(|op| {
            let text = op.to_string();
            let mut parts: Vec<&str> = text.split(':').collect();
            let name = parts.remove(0);
            // A gravity (`north`, `focus:X:Y`) is one named field in JSON, however many
            // segments the string form spends on it.
            let fixed = match name {
                "resize" => 3,
                "crop" => 2,
                _ => parts.len(),
            };
            let gravity = (parts.len() > fixed && parts[fixed].parse::<f64>().is_err())
                .then(|| parts.split_off(fixed).join(":"));
            let names: &[&str] = match name {
                "resize" => &["width", "height", "mode"],
                "thumbnail" => &["size"],
                "crop" => &["width", "height", "x", "y"],
                "rotate" => &["degrees"],
                "flip" => &["axis"],
                "blur" | "sharpen" => &["sigma"],
                "brightness" | "contrast" | "saturation" => &["value"],
                "format" => &["format", "quality"],
                _ => &[],
            };
            let mut object = serde_json::Map::new();
            object.insert("op".into(), name.into());
            for (arg, value) in names.iter().zip(parts) {
                let json = match value.parse::<f64>() {
                    Ok(n) => serde_json::json!(n),
                    Err(_) => serde_json::json!(value),
                };
                object.insert((*arg).into(), json);
            }
            if let Some(gravity) = gravity {
                object.insert("gravity".into(), gravity.into());
            }
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

fn key_of(chain: &Chain) -> String {
    derive_key("opossum", "1", "img/1.jpg", chain, &Options::new()).to_string()
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
