//! Finds where a key path such as `services[2].host` stands in a YAML text,
//! so that checks made after parsing can still point at a line and column.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column (both 1-based) of every key path in a document.
#[derive(Debug, Default)]
pub struct Locations {
    map: HashMap<String, (usize, usize)>,
}

impl Locations {
    /// Index `text`. A text that does not parse gives an empty index (serde
    /// reports the syntax error itself).
    pub fn index(text: &str) -> Locations {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Locations::default();
        }
        Locations { map: builder.map }
    }

    /// The most specific key path at `(line, column)` that lies under
    /// `parent` (or anywhere if `parent` is empty): the key on that line
    /// starting closest before the column.
    pub fn key_at(&self, (line, col): (usize, usize), parent: &str) -> Option<String> {
        self.map
            .iter()
            .filter(|(path, (l, c))| {
                *l == line
                    && *c <= col.max(1)
                    && (parent.is_empty() || path.starts_with(parent))
                    && path.len() > parent.len()
            })
            .max_by_key(|(path, (_, c))| (*c, path.len()))
            .map(|(path, _)| path.clone())
    }

    /// Where `path` stands; if it is absent, where its nearest present parent
    /// stands (a missing key is reported at the mapping that lacks it).
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.map.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    Map {
        key: Option<String>,
        expecting_key: bool,
    },
    Seq {
        index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    map: HashMap<String, (usize, usize)>,
}

impl Builder {
    fn path(&self) -> String {
        let mut out = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Map { key: Some(k), .. } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Frame::Map { key: None, .. } => {}
                Frame::Seq { index } => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// A value (scalar or collection start) arrived in the current frame.
    fn value_started(&mut self, mark: Marker) {
        if let Some(Frame::Seq { .. }) = self.stack.last() {
            let path = self.path();
            self.map
                .entry(path)
                .or_insert((mark.line(), mark.col() + 1));
        }
    }

    /// A value finished in the current frame: advance it.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { expecting_key, key }) => {
                *expecting_key = true;
                *key = None;
            }
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    expecting_key: true,
                    ..
                }) = self.stack.last()
                {
                    // A block mapping's start mark lies after its first key;
                    // its first key is the better place to point at.
                    let parent = self.path();
                    self.map
                        .entry(parent)
                        .or_insert((mark.line(), mark.col() + 1));
                    if let Some(Frame::Map { key, expecting_key }) = self.stack.last_mut() {
                        *key = Some(value);
                        *expecting_key = false;
                    }
                    let path = self.path();
                    self.map.insert(path, (mark.line(), mark.col() + 1));
                } else {
                    self.value_started(mark);
                    self.value_done();
                }
            }
            Event::MappingStart(..) => {
                self.stack.push(Frame::Map {
                    key: None,
                    expecting_key: true,
                });
            }
            Event::SequenceStart(..) => {
                self.value_started(mark);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_done();
            }
            Event::Alias(_) => {
                self.value_started(mark);
                self.value_done();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        let text = "a: 1\nservices:\n  - name: x\n    host: h\n  - name: y\n    host: z\n";
        let loc = Locations::index(text);
        assert_eq!(loc.find("a"), Some((1, 1)));
        assert_eq!(loc.find("services[1].host"), Some((6, 5)));
        assert_eq!(loc.find("services[0].name"), Some((3, 5)));
        // Missing key: reported at the parent.
        assert_eq!(loc.find("services[1].policy"), Some((5, 5)));
    }
}
