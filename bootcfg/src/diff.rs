//! Unified diffs (`diff -u` style, 3 lines of context) for showing file
//! changes in `plan` and `remove --dry-run`, made by the `similar` crate.

use similar::TextDiff;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// The unified diff from `old` to `new` of the file at `path` (absolute,
/// inside the root). `None` means the file does not exist on that side.
/// Returns an empty string when nothing changes.
pub fn unified(path: &str, old: Option<&str>, new: Option<&str>) -> String {
    if old == new {
        return String::new();
    }
    let rel = path.trim_start_matches('/');
    let side = |present: bool, prefix: &str| {
        if present {
            format!("{prefix}/{rel}")
        } else {
            "/dev/null".to_string()
        }
    };
    let (a, b) = (side(old.is_some(), "a"), side(new.is_some(), "b"));
    TextDiff::from_lines(old.unwrap_or(""), new.unwrap_or(""))
        .unified_diff()
        .context_radius(CONTEXT)
        .header(&a, &b)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_file() {
        assert_eq!(
            unified("/etc/x", None, Some("a\nb\n")),
            "--- /dev/null\n+++ b/etc/x\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
    }

    #[test]
    fn deleted_file() {
        assert_eq!(
            unified("/etc/x", Some("a\n"), None),
            "--- a/etc/x\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n"
        );
    }

    #[test]
    fn one_line_change_with_context() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
        assert_eq!(
            unified("/f", Some(old), Some(new)),
            "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn unchanged_is_empty() {
        assert_eq!(unified("/f", Some("x\n"), Some("x\n")), "");
    }
}
