//! AWS Region codes Lifeboat accepts, and the Region sets inside which a DynamoDB global
//! table can have multi-Region strong consistency (README, "The table").

/// Every public AWS Region code, GovCloud and China included.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Region sets within which a global table supports multi-Region strong consistency.
pub const MRSC_REGION_SETS: &[(&str, &[&str])] = &[
    ("US", &["us-east-1", "us-east-2", "us-west-2"]),
    (
        "EU",
        &["eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"],
    ),
    (
        "AP",
        &["ap-northeast-1", "ap-northeast-2", "ap-northeast-3"],
    ),
];

/// Whether `code` is a real Region code.
pub fn is_known(code: &str) -> bool {
    KNOWN_REGIONS.contains(&code)
}

/// The MRSC set holding every one of `regions`, if there is one.
pub fn mrsc_set<'a>(regions: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let regions: Vec<&str> = regions.into_iter().collect();
    MRSC_REGION_SETS
        .iter()
        .find(|(_, set)| regions.iter().all(|r| set.contains(r)))
        .map(|(name, _)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_real_regions_only() {
        assert!(is_known("us-east-1"));
        assert!(is_known("ap-southeast-1"));
        assert!(!is_known("us-east-7"));
        assert!(!is_known("US-EAST-1"));
        assert!(!is_known(""));
    }

    #[test]
    fn mrsc_needs_one_set() {
        assert_eq!(
            mrsc_set(["us-east-1", "us-west-2", "us-east-2"]),
            Some("US")
        );
        assert_eq!(mrsc_set(["eu-west-1", "eu-central-1"]), Some("EU"));
        assert_eq!(mrsc_set(["us-east-1", "eu-west-1"]), None);
        assert_eq!(mrsc_set(["us-west-1", "us-east-1"]), None);
    }
}
