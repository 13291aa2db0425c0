//! A [`Report`] as the text table `tandem bench` prints.

use crate::Report;

/// The report as aligned text tables, one per scenario measured.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "tandem bench: PostgreSQL {} on a {}, {} cores, load average {} before, {} after\n",
        r.server_version,
        r.target,
        r.machine.cores,
        opt(r.machine.load_before),
        opt(r.machine.load_after)
    );
    if !r.backfill.is_empty() {
        out.push_str(
            "\n1. Backfill speed: tandem's backfill ÷ one plain UPDATE of the same expression, on the bare table and with the migration's trigger in place; and the backfill with several workers ÷ the plain UPDATE\n",
        );
        let mut rows = vec![header(&[
            "rows",
            "backfill rows/s",
            "plain UPDATE rows/s",
            "ratio",
            "plain UPDATE, trigger in place",
            "ratio",
            "batches",
            "parallel backfill rows/s",
            "ratio",
        ])];
        for b in &r.backfill {
            rows.push(vec![
                thousands(b.rows as f64),
                thousands(b.backfill_rows_per_s),
                thousands(b.plain_update_rows_per_s),
                format!("{:.2}", b.ratio),
                thousands(b.plain_update_under_trigger_rows_per_s),
                format!("{:.2}", b.ratio_under_trigger),
                b.batches.to_string(),
                format!(
                    "{} ({}{} sessions)",
                    thousands(b.parallel_backfill_rows_per_s),
                    if b.parallel_fixed { "" } else { "up to " },
                    b.parallel_workers
                ),
                format!("{:.2}", b.parallel_ratio),
            ]);
        }
        out.push_str(&align(&rows));
    }
    if !r.triggers.is_empty() {
        out.push_str("\n2. Write cost of the dual-write triggers: with ÷ without\n");
        let oltp = &r.triggers[0].oltp;
        let mut rows = vec![header(&[
            "rows",
            "bulk UPDATE of a (read by up)",
            "bulk UPDATE of d (unrelated)",
            &format!("OLTP mix ({}, {} clients) tps", oltp.driver, oltp.clients),
            "OLTP mean latency",
        ])];
        for t in &r.triggers {
            let mut row = vec![thousands(t.rows as f64)];
            for b in &t.bulk {
                row.push(format!(
                    "{:.2} s ÷ {:.2} s = {:.2}",
                    b.with_triggers_s, b.without_triggers_s, b.ratio
                ));
            }
            row.push(format!(
                "{} ÷ {} → cost {:.2}",
                thousands(t.oltp.with_triggers_tps),
                thousands(t.oltp.without_triggers_tps),
                t.oltp.ratio
            ));
            row.push(format!(
                "{:.2} ms ÷ {:.2} ms",
                t.oltp.with_triggers_latency_ms, t.oltp.without_triggers_latency_ms
            ));
            rows.push(row);
        }
        out.push_str(&align(&rows));
    }
    if !r.traffic.is_empty() {
        out.push_str(
            "\n3. What the application feels: clients at a fixed rate, per phase of the change\n",
        );
        let mut rows = vec![header(&[
            "rows",
            "change",
            "long transaction",
            "by",
            "phase",
            "seconds",
            "stmts/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
        ])];
        for t in &r.traffic {
            let who = match t.method {
                crate::traffic::Method::Tandem => "tandem",
                crate::traffic::Method::ByHand => "by hand",
            };
            for (i, p) in t.phases.iter().chain(std::iter::once(&t.total)).enumerate() {
                let first = i == 0;
                rows.push(vec![
                    if first {
                        thousands(t.rows as f64)
                    } else {
                        String::new()
                    },
                    if first {
                        t.change.title().into()
                    } else {
                        String::new()
                    },
                    if first {
                        if t.long_transaction { "yes" } else { "no" }.into()
                    } else {
                        String::new()
                    },
                    if first { who.into() } else { String::new() },
                    p.phase.clone(),
                    format!("{:.1}", p.seconds),
                    format!("{:.0}", p.per_second),
                    format!("{:.2}", p.p50_ms),
                    format!("{:.2}", p.p99_ms),
                    format!("{:.1}", p.max_ms),
                    p.errors.to_string(),
                ]);
            }
        }
        out.push_str(&align(&rows));
        for t in r.traffic.iter().filter(|t| !t.error_messages.is_empty()) {
            out.push_str(&format!(
                "{} rows, {}{}, {}: {}\n",
                thousands(t.rows as f64),
                t.change.title(),
                if t.long_transaction {
                    " behind a long transaction"
                } else {
                    ""
                },
                match t.method {
                    crate::traffic::Method::Tandem => "tandem",
                    crate::traffic::Method::ByHand => "by hand",
                },
                t.error_messages.join("; ")
            ));
        }
        for c in &r.charts {
            out.push_str(&format!(
                "chart: {} and {}\n",
                c.svg.display(),
                c.png.display()
            ));
        }
    }
    if let Some(s) = &r.scaling {
        out.push_str("\n4. Scaling: backfill rows/s by table size\n");
        let with_scenario_1 = s.plain_update_largest_over_smallest.is_some();
        let mut head = vec!["rows", "backfill rows/s", "µs per row"];
        if with_scenario_1 {
            head.extend(["plain UPDATE rows/s", "parallel backfill rows/s"]);
        }
        let mut rows = vec![header(&head)];
        for p in &s.points {
            let mut row = vec![
                thousands(p.rows as f64),
                thousands(p.backfill_rows_per_s),
                format!("{:.2}", p.us_per_row),
            ];
            if with_scenario_1 {
                for rate in [p.plain_update_rows_per_s, p.parallel_backfill_rows_per_s] {
                    row.push(rate.map_or_else(|| "—".into(), thousands));
                }
            }
            rows.push(row);
        }
        out.push_str(&align(&rows));
        out.push_str(&format!(
            "largest ÷ smallest rows/s: {:.2} (1 means the cost per row stays flat)\n",
            s.largest_over_smallest
        ));
        if let (Some(plain), Some(parallel)) = (
            s.plain_update_largest_over_smallest,
            s.parallel_largest_over_smallest,
        ) {
            out.push_str(&format!(
                "the same for one plain UPDATE: {plain:.2}, and for the parallel backfill: {parallel:.2}\n"
            ));
        }
    }
    if !r.indexed.is_empty() {
        out.push_str(
            "\n5. int → bigint of an indexed column, with clients running: tandem against one plain UPDATE into an added column and the blocking ALTER\n",
        );
        let mut rows = vec![header(&[
            "rows",
            "how",
            "wall s",
            "fill rows/s",
            "WAL MB",
            "sessions",
            "clients p50 / p99 / max ms",
            "client errors",
        ])];
        for x in &r.indexed {
            for a in &x.arms {
                rows.push(vec![
                    thousands(x.rows as f64),
                    a.arm.title().to_string(),
                    format!("{:.1}", a.seconds),
                    thousands(a.fill_rows_per_s),
                    thousands(a.wal_bytes / 1e6),
                    a.sessions.map_or_else(|| "—".into(), |n| n.to_string()),
                    format!(
                        "{:.1} / {:.1} / {:.1}",
                        a.clients.p50_ms, a.clients.p99_ms, a.clients.max_ms
                    ),
                    a.clients.errors.to_string(),
                ]);
            }
        }
        out.push_str(&align(&rows));
        for x in &r.indexed {
            out.push_str(&format!(
                "{} rows: backfill ÷ plain UPDATE rows/s {:.2}; wall time, plain UPDATE ÷ tandem {:.2}, blocking ALTER ÷ tandem {:.2}\n",
                thousands(x.rows as f64),
                x.backfill_over_plain_update,
                x.plain_update_seconds_over_tandem,
                x.alter_seconds_over_tandem
            ));
        }
    }
    out
}

fn header(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "unknown".into(), |x| format!("{x:.2}"))
}

/// Columns padded to their widest cell, two spaces apart; the first row is the header.
pub(crate) fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - c.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(thousands(f64::NAN), "-");
    }

    #[test]
    fn align_pads_columns() {
        let t = align(&[
            vec!["rows".into(), "x".into()],
            vec!["100,000".into(), "1.00".into()],
        ]);
        assert_eq!(t, "rows     x\n100,000  1.00\n");
    }
}
