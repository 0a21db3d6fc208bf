//! Aligned text tables for the audit commands.
//!
//! A query can match millions of lines, so its table cannot wait for the
//! last row to know the column widths: the widths are settled on the first
//! rows and later, wider values simply push their row out of line.

use std::io::{self, Write};

/// A table written to `out` as rows arrive.
pub struct Table {
    headers: Vec<&'static str>,
    /// Columns aligned to the right (counts).
    right: Vec<bool>,
    pending: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    settle_after: usize,
}

fn width(s: &str) -> usize {
    s.chars().count()
}

impl Table {
    /// A table with these column headers; `settle_after` rows are held to
    /// measure widths before anything is written.
    pub fn new(headers: &[&'static str], settle_after: usize) -> Table {
        Table {
            headers: headers.to_vec(),
            right: vec![false; headers.len()],
            pending: Vec::new(),
            widths: None,
            settle_after,
        }
    }

    /// Align these columns to the right.
    pub fn right(mut self, columns: &[usize]) -> Table {
        for &c in columns {
            if let Some(r) = self.right.get_mut(c) {
                *r = true;
            }
        }
        self
    }

    /// Add a row (as many cells as headers).
    pub fn push(&mut self, row: Vec<String>, out: &mut dyn Write) -> io::Result<()> {
        match &self.widths {
            Some(w) => write_row(out, &row, w, &self.right),
            None => {
                self.pending.push(row);
                if self.pending.len() >= self.settle_after {
                    self.settle(out)?;
                }
                Ok(())
            }
        }
    }

    /// Write whatever is still held (at least the header).
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.widths.is_none() {
            self.settle(out)?;
        }
        Ok(())
    }

    fn settle(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut w: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.pending {
            for (i, cell) in row.iter().enumerate() {
                if let Some(slot) = w.get_mut(i) {
                    *slot = (*slot).max(width(cell));
                }
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        write_row(out, &header, &w, &self.right)?;
        for row in std::mem::take(&mut self.pending) {
            write_row(out, &row, &w, &self.right)?;
        }
        self.widths = Some(w);
        Ok(())
    }
}

fn write_row(
    out: &mut dyn Write,
    row: &[String],
    widths: &[usize],
    right: &[bool],
) -> io::Result<()> {
    let mut line = String::with_capacity(160);
    let last = row.len().saturating_sub(1);
    for (i, cell) in row.iter().enumerate() {
        let w = widths.get(i).copied().unwrap_or(0);
        let pad = w.saturating_sub(width(cell));
        if right.get(i).copied().unwrap_or(false) {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(cell);
        } else {
            line.push_str(cell);
            if i < last {
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if i < last {
            line.push_str("  ");
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_on_the_widest_value_including_non_ascii() {
        let mut t = Table::new(&["SERVICE", "REQUESTS"], usize::MAX).right(&[1]);
        let mut out = Vec::new();
        t.push(vec!["Lönebesked".into(), "7".into()], &mut out)
            .unwrap();
        t.push(vec!["Wiki".into(), "1234".into()], &mut out)
            .unwrap();
        assert!(out.is_empty(), "held until finished");
        t.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SERVICE     REQUESTS\nLönebesked         7\nWiki            1234\n"
        );
    }

    #[test]
    fn widths_settle_after_the_first_rows_and_later_rows_stream() {
        let mut t = Table::new(&["A", "B"], 2);
        let mut out = Vec::new();
        t.push(vec!["x".into(), "1".into()], &mut out).unwrap();
        assert!(out.is_empty());
        t.push(vec!["yy".into(), "2".into()], &mut out).unwrap();
        t.push(vec!["zzzz".into(), "3".into()], &mut out).unwrap();
        t.finish(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A   B\nx   1\nyy  2\nzzzz  3\n"
        );
    }

    #[test]
    fn an_empty_table_still_has_its_header() {
        let mut t = Table::new(&["A", "B"], 10);
        let mut out = Vec::new();
        t.finish(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A  B\n");
    }
}
