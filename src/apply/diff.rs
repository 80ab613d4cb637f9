//! Unified diffs for the admin, with what must not be shown masked.

use crate::plan::Visibility;

/// Masks what a file's visibility says must not be shown.
pub(crate) fn shown(text: &str, visibility: &Visibility) -> String {
    match visibility {
        Visibility::Public => text.to_string(),
        Visibility::Redacted(keys) => mask_keys(text, keys),
        Visibility::NotShown(_) => String::new(),
    }
}

/// Replaces the value of every `KEY:` line for these keys (and the indented
/// lines that continue it) with `<redacted>`.
fn mask_keys(text: &str, keys: &[&str]) -> String {
    let mut out = String::new();
    let mut in_secret = false;
    for line in text.split_inclusive('\n') {
        if in_secret && line.starts_with([' ', '\t']) {
            continue;
        }
        in_secret = false;
        let trimmed = line.trim_start();
        let key = keys.iter().find(|k| {
            trimmed
                .trim_start_matches(['"', '\''])
                .strip_prefix(**k)
                .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).starts_with(':'))
        });
        match key {
            Some(k) => {
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!("{indent}{k}: <redacted>\n"));
                in_secret = true;
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The diff from `old` (absent: a new file) to `new`, masked.
pub fn diff_text(path: &str, old: Option<&[u8]>, new: &[u8], visibility: &Visibility) -> String {
    if let Visibility::NotShown(what) = visibility {
        return format!("  ({path}: {what}, contents not shown)\n");
    }
    let old_text = old
        .map(|b| shown(&String::from_utf8_lossy(b), visibility))
        .unwrap_or_default();
    let new_text = shown(&String::from_utf8_lossy(new), visibility);
    let a = if old.is_some() {
        format!("a{path}")
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&a, &format!("b{path}"))
        .to_string()
}

#[cfg(test)]
mod masking_tests {
    use super::*;

    #[test]
    fn masking_by_key_hides_whole_values() {
        let text = "frontendlogin: admin\nfrontendpassword: 'a''b'\ndbtcppassword: |\n  line1\n  line2\ndbtcpname: cells\n";
        let shown = shown(
            text,
            &Visibility::Redacted(vec!["frontendpassword", "dbtcppassword"]),
        );
        assert_eq!(
            shown,
            "frontendlogin: admin\nfrontendpassword: <redacted>\ndbtcppassword: <redacted>\ndbtcpname: cells\n"
        );
    }
}
