//! λ weight vectors as users write them (`--lambda`, a config table), validated against the
//! data's dimensions: `uniform`, `helpfulness=0.5,honesty=0.5`, or `0.25,0.25,0.25,0.25` (in
//! the data's dimension order).
//!
//! λ lies on the simplex (paper Eq. 9), so every weight must be finite and ≥ 0 and at least
//! one > 0; the vector is then normalised to sum 1. Dimensions not named get weight 0.

use std::path::Path;

use super::error::{DataError, ErrorKind};

/// A λ as written, before it meets the data's dimensions.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum LambdaSpec {
    /// `1/m` on each of the data's `m` dimensions.
    #[default]
    Uniform,
    /// Weights by dimension name.
    Named(Vec<(String, f64)>),
    /// Weights in the data's dimension order.
    Positional(Vec<f64>),
}

impl LambdaSpec {
    /// Parses `uniform`, `name=w,name=w` or `w,w,…`. `origin` names where the text came from
    /// (a config file, or `--lambda`) in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, DataError> {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("uniform") {
            return Ok(Self::Uniform);
        }
        let parts: Vec<&str> = t.split(',').map(str::trim).collect();
        let number = |s: &str, field: String| -> Result<f64, DataError> {
            s.parse::<f64>().map_err(|_| {
                DataError::new(ErrorKind::Lambda, origin, "a number", format!("{s:?}"))
                    .field(field)
                    .hint("write λ as `uniform`, `helpfulness=0.5,honesty=0.5`, or `0.5,0.5`")
            })
        };
        let spec = if parts.iter().all(|p| p.contains('=')) {
            let mut named = Vec::with_capacity(parts.len());
            for p in parts {
                let (k, v) = p.split_once('=').expect("checked");
                let k = k.trim().to_string();
                named.push((k.clone(), number(v.trim(), format!("lambda.{k}"))?));
            }
            Self::Named(named)
        } else {
            let mut w = Vec::with_capacity(parts.len());
            for (i, p) in parts.iter().enumerate() {
                w.push(number(p, format!("lambda[{i}]"))?);
            }
            Self::Positional(w)
        };
        spec.check(origin)?;
        Ok(spec)
    }

    /// Weights by name, as a config table gives them.
    pub fn from_pairs(pairs: Vec<(String, f64)>, origin: &Path) -> Result<Self, DataError> {
        let spec = Self::Named(pairs);
        spec.check(origin)?;
        Ok(spec)
    }

    /// Every weight finite and ≥ 0, not all zero.
    fn check(&self, origin: &Path) -> Result<(), DataError> {
        let items: Vec<(String, f64)> = match self {
            Self::Uniform => return Ok(()),
            Self::Named(n) => n.iter().map(|(k, v)| (format!("lambda.{k}"), *v)).collect(),
            Self::Positional(w) => w
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("lambda[{i}]"), *v))
                .collect(),
        };
        for (field, v) in &items {
            if !v.is_finite() || *v < 0.0 {
                return Err(DataError::new(
                    ErrorKind::Lambda,
                    origin,
                    "a weight ≥ 0 (λ lies on the simplex)",
                    format!("{v}"),
                )
                .field(field.clone())
                .hint("λ weights are non-negative and are normalised to sum 1, e.g. helpfulness=0.7,honesty=0.3"));
            }
        }
        if items.iter().all(|(_, v)| *v == 0.0) {
            return Err(DataError::new(
                ErrorKind::Lambda,
                origin,
                "at least one weight > 0",
                "all weights 0",
            )
            .field("lambda"));
        }
        Ok(())
    }

    /// The normalised weights over `dims` (the data's dimensions, in order).
    pub fn weights(&self, dims: &[String], origin: &Path) -> Result<Vec<f64>, DataError> {
        let raw: Vec<f64> = match self {
            Self::Uniform => vec![1.0; dims.len()],
            Self::Positional(w) => {
                if w.len() != dims.len() {
                    return Err(DataError::new(
                        ErrorKind::Lambda,
                        origin,
                        format!(
                            "{} weights, one per dimension ({})",
                            dims.len(),
                            dims.join(", ")
                        ),
                        format!("{} weights", w.len()),
                    )
                    .field("lambda")
                    .hint("name the dimensions to be explicit: helpfulness=0.5,honesty=0.5"));
                }
                w.clone()
            }
            Self::Named(named) => {
                for (k, _) in named {
                    if !dims.contains(k) {
                        return Err(DataError::new(
                            ErrorKind::UnknownDimension,
                            origin,
                            format!("a dimension present in the data (one of: {})", dims.join(", ")),
                            format!("{k:?}"),
                        )
                        .field(format!("lambda.{k}"))
                        .hint("dimension names are case-sensitive; `lambda-dpo data inspect FILE` lists them"));
                    }
                }
                dims.iter()
                    .map(|d| named.iter().filter(|(k, _)| k == d).map(|(_, v)| v).sum())
                    .collect()
            }
        };
        let total: f64 = raw.iter().sum();
        if dims.is_empty() || total <= 0.0 {
            return Err(DataError::new(
                ErrorKind::Lambda,
                origin,
                "positive weight on at least one of the data's dimensions",
                if dims.is_empty() {
                    "no dimensions".to_string()
                } else {
                    "total weight 0".to_string()
                },
            )
            .field("lambda"));
        }
        Ok(raw.iter().map(|w| w / total).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> Vec<String> {
        ["helpfulness", "honesty"].map(String::from).to_vec()
    }

    #[test]
    fn parses_and_normalises() {
        let o = Path::new("--lambda");
        assert_eq!(
            LambdaSpec::parse("uniform", o)
                .unwrap()
                .weights(&dims(), o)
                .unwrap(),
            vec![0.5, 0.5]
        );
        assert_eq!(
            LambdaSpec::parse("honesty=3", o)
                .unwrap()
                .weights(&dims(), o)
                .unwrap(),
            vec![0.0, 1.0]
        );
        assert_eq!(
            LambdaSpec::parse("1, 3", o)
                .unwrap()
                .weights(&dims(), o)
                .unwrap(),
            vec![0.25, 0.75]
        );
    }

    #[test]
    fn refuses_negative_zero_unknown_and_wrong_length() {
        let o = Path::new("config.toml");
        let e = LambdaSpec::parse("helpfulness=-0.5,honesty=1", o).unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::Lambda, Some("lambda.helpfulness"))
        );
        assert!(e
            .to_string()
            .contains("expected a weight ≥ 0 (λ lies on the simplex), found -0.5"));
        assert_eq!(
            LambdaSpec::parse("0,0", o).unwrap_err().kind,
            ErrorKind::Lambda
        );
        assert_eq!(
            LambdaSpec::parse("x=one", o).unwrap_err().kind,
            ErrorKind::Lambda
        );
        let e = LambdaSpec::parse("Helpfulness=1", o)
            .unwrap()
            .weights(&dims(), o)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnknownDimension);
        assert!(e.expected.contains("helpfulness, honesty"));
        let e = LambdaSpec::parse("1,1,1", o)
            .unwrap()
            .weights(&dims(), o)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Lambda);
    }
}
