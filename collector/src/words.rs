//! The codes the collector stores and answers in JSON (`replace_now`,
//! `manufacturer_failure`, `awaiting_parts`...) in the words a person
//! reads on a page or in a report: one mapping, kept here. A code this
//! table does not know reads as itself with spaces, never as nothing.

/// `code` in plain words.
pub fn plain(code: &str) -> String {
    let known = match code {
        // How soon a part should be replaced.
        "replace_now" => "replace now",
        "within_days" => "replace within days",
        "watch" => "watch",
        // Why a disk is to be replaced.
        "manufacturer_failure" => "the drive's own health check reports it failing",
        "rise_above_baseline" => "error counters rose above the disk's baseline",
        "pending_sectors_not_reallocated" => "unreadable sectors are waiting and were not remapped",
        "beyond_rated_life" => "running beyond its rated service life",
        "sustained_over_temperature" => "kept running hotter than its limit",
        "wear_forecast" => "worn out soon at the current write rate",
        // Risk.
        "critical" => "critical",
        "high" => "high",
        "elevated" => "elevated",
        // Service.
        "on_site" => "on site",
        "remote" => "remote",
        "awaiting_customer" => "awaiting the customer",
        "awaiting_parts" => "awaiting parts",
        "awaiting_vendor" => "awaiting the vendor",
        "awaiting_window" => "awaiting a maintenance window",
        "accepted_risk" => "risk accepted",
        "in_progress" => "in progress",
        "false_positive" => "false alarm",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    if let Some(days) = code
        .strip_prefix("second_rise_within_")
        .and_then(|d| d.strip_suffix('d'))
    {
        return format!("error counters rose twice within {days} days");
    }
    if let Some(days) = code
        .strip_prefix("wear_reaches_100pct_within_")
        .and_then(|d| d.strip_suffix('d'))
    {
        return format!("worn out within {days} days at the current write rate");
    }
    if let Some(counter) = code.strip_suffix("_grew") {
        return format!("{} grew", counter.replace('_', " "));
    }
    code.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn codes_read_as_words_and_unknown_ones_as_themselves() {
        assert_eq!(plain("replace_now"), "replace now");
        assert_eq!(
            plain("manufacturer_failure"),
            "the drive's own health check reports it failing"
        );
        assert_eq!(
            plain("second_rise_within_30d"),
            "error counters rose twice within 30 days"
        );
        assert_eq!(
            plain("wear_reaches_100pct_within_90d"),
            "worn out within 90 days at the current write rate"
        );
        assert_eq!(plain("reallocated_sectors_grew"), "reallocated sectors grew");
        assert_eq!(plain("awaiting_parts"), "awaiting parts");
        assert_eq!(plain("something_new"), "something new");
        assert_eq!(plain(""), "");
    }
}
