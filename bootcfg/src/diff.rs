//! A small unified diff (`diff -u` style, 3 lines of context) for showing
//! file changes in `plan` and `remove --dry-run`. The files are tiny, so a
//! plain longest-common-subsequence table is fine.

/// One line of an edit script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    Del(usize),
    Add(usize),
}

fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(i, j));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Del(i));
            i += 1;
        } else {
            ops.push(Op::Add(j));
            j += 1;
        }
    }
    ops
}

/// The unified diff from `old` to `new` of the file at `path` (absolute,
/// inside the root). `None` means the file does not exist on that side.
/// Returns an empty string when nothing changes.
pub fn unified(path: &str, old: Option<&str>, new: Option<&str>) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.map(|s| s.lines().collect()).unwrap_or_default();
    let b: Vec<&str> = new.map(|s| s.lines().collect()).unwrap_or_default();
    let rel = path.trim_start_matches('/');
    let mut out = format!(
        "--- {}\n+++ {}\n",
        if old.is_some() {
            format!("a/{rel}")
        } else {
            "/dev/null".into()
        },
        if new.is_some() {
            format!("b/{rel}")
        } else {
            "/dev/null".into()
        },
    );
    let ops = edit_script(&a, &b);
    const CTX: usize = 3;
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&k| !matches!(ops[k], Op::Same(..)))
        .collect();
    let mut k = 0;
    while k < changed.len() {
        // Group changes whose context windows touch into one hunk.
        let first = changed[k];
        let mut last = first;
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CTX + 1 {
            k += 1;
            last = changed[k];
        }
        k += 1;
        let lo = first.saturating_sub(CTX);
        let hi = (last + CTX + 1).min(ops.len());
        let hunk = &ops[lo..hi];
        // Start lines: the first a-line/b-line at or after the hunk start.
        let (mut a_start, mut b_start) = (a.len(), b.len());
        let mut a_found = false;
        let mut b_found = false;
        for op in hunk {
            match *op {
                Op::Same(i, j) => {
                    if !a_found {
                        a_start = i;
                        a_found = true;
                    }
                    if !b_found {
                        b_start = j;
                        b_found = true;
                    }
                }
                Op::Del(i) if !a_found => {
                    a_start = i;
                    a_found = true;
                }
                Op::Add(j) if !b_found => {
                    b_start = j;
                    b_found = true;
                }
                _ => {}
            }
        }
        if !a_found {
            // No a-lines in the hunk: count those before it.
            a_start = ops[..lo]
                .iter()
                .filter(|o| !matches!(o, Op::Add(_)))
                .count();
        }
        if !b_found {
            b_start = ops[..lo]
                .iter()
                .filter(|o| !matches!(o, Op::Del(_)))
                .count();
        }
        let a_len = hunk.iter().filter(|o| !matches!(o, Op::Add(_))).count();
        let b_len = hunk.iter().filter(|o| !matches!(o, Op::Del(_))).count();
        let range = |start: usize, len: usize| {
            if len == 0 {
                format!("{start},0")
            } else if len == 1 {
                format!("{}", start + 1)
            } else {
                format!("{},{}", start + 1, len)
            }
        };
        out += &format!(
            "@@ -{} +{} @@\n",
            range(a_start, a_len),
            range(b_start, b_len)
        );
        for op in hunk {
            match *op {
                Op::Same(i, _) => out += &format!(" {}\n", a[i]),
                Op::Del(i) => out += &format!("-{}\n", a[i]),
                Op::Add(j) => out += &format!("+{}\n", b[j]),
            }
        }
    }
    out
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
