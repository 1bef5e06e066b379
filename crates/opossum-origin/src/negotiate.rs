//! `Accept` negotiation: a chain that names no format gets the first offered format the
//! client accepts (WebP, then AVIF), and the answer then varies with `Accept`.

use opossum_ops::{Chain, Encoding, Operation, OutputFormat};

/// Adds the first of `offered` that `accept` names when `chain` sets no format; says whether
/// the answer depends on `Accept`.
pub(crate) fn negotiate(
    chain: Chain,
    accept: Option<&str>,
    offered: &[OutputFormat],
) -> (Chain, bool) {
    if chain.is_analysis() || chain.encoding().is_some() || offered.is_empty() {
        return (chain, false);
    }
    let accept = accept.unwrap_or("").to_ascii_lowercase();
    let Some(format) = offered.iter().find(|f| accept.contains(f.mime())) else {
        return (chain, true);
    };
    let mut ops = chain.ops().to_vec();
    ops.push(Operation::Format(Encoding::default_for(*format)));
    match Chain::from_operations(ops) {
        Ok(negotiated) => (negotiated, true),
        Err(_) => (chain, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_adds_an_accepted_format_only_when_the_chain_has_none() {
        let offered = [OutputFormat::Webp, OutputFormat::Avif];
        let chain = |text: &str| Chain::parse(text).unwrap();
        let (c, vary) = negotiate(
            chain("thumbnail:200"),
            Some("image/avif,image/webp,*/*"),
            &offered,
        );
        assert_eq!(
            (c.to_string().as_str(), vary),
            ("thumbnail:200,format:webp", true)
        );
        let (c, vary) = negotiate(chain("thumbnail:200"), Some("image/avif"), &offered);
        assert_eq!(
            (c.to_string().as_str(), vary),
            ("thumbnail:200,format:avif", true)
        );
        let (c, vary) = negotiate(chain("thumbnail:200"), Some("image/png"), &offered);
        assert_eq!((c.to_string().as_str(), vary), ("thumbnail:200", true));
        let (c, vary) = negotiate(
            chain("thumbnail:200,format:png"),
            Some("image/webp"),
            &offered,
        );
        assert_eq!(
            (c.to_string().as_str(), vary),
            ("thumbnail:200,format:png", false)
        );
        let (_, vary) = negotiate(chain("analyze"), Some("image/webp"), &offered);
        assert!(!vary);
    }
}
