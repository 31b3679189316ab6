//! Where a field path is in the YAML text, for error messages with a line
//! and a column; and the nesting limit checked before any parse.

use crate::config::ConfigError;

/// Nesting deeper than this is refused before the config is parsed: a real
/// config nests five levels, and a deeply nested document would take the
/// parser (and dropping what it built) into unbounded recursion and time.
pub const MAX_NESTING: usize = 32;

/// The error for a document nested too deeply, at a 1-based line and a 0-based column.
pub(super) fn too_deep(line: usize, column: usize) -> ConfigError {
    ConfigError::Invalid {
        file: None,
        line: Some(line),
        column: Some(column + 1),
        field: None,
        message: format!(
            "nested more than {MAX_NESTING} levels deep; a canary config needs fewer than ten"
        ),
    }
}

/// Refuses a document nested deeper than [`MAX_NESTING`], at the first
/// collection past it, reading only up to there.
pub(super) fn check_nesting(text: &str) -> Result<(), ConfigError> {
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    let mut depth = 0_usize;
    loop {
        match parser.next_token() {
            Ok((yaml_rust2::Event::StreamEnd, _)) => return Ok(()),
            // The scanner reads flow collections (`[[[…`) ahead of the events
            // and stops at its own limit, deeper than ours.
            Err(err) if err.info().contains("recursion limit") => {
                return Err(too_deep(err.marker().line(), err.marker().col()));
            }
            // Other syntax errors are reported, with their place, by the full parse.
            Err(_) => return Ok(()),
            Ok((
                yaml_rust2::Event::SequenceStart(..) | yaml_rust2::Event::MappingStart(..),
                mark,
            )) => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(too_deep(mark.line(), mark.col()));
                }
            }
            Ok((yaml_rust2::Event::SequenceEnd | yaml_rust2::Event::MappingEnd, _)) => {
                depth = depth.saturating_sub(1);
            }
            Ok(_) => {}
        }
    }
}

// === Locating a field path in the text ===

/// One step of a field path.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum PathSegment {
    Key(String),
    Index(usize),
}

/// A YAML node with the 1-based line and column where it starts.
#[derive(Debug)]
pub(super) enum LocatedNode {
    Scalar {
        at: (usize, usize),
        value: String,
    },
    Sequence {
        at: (usize, usize),
        items: Vec<LocatedNode>,
    },
    Mapping {
        at: (usize, usize),
        entries: Vec<(LocatedNode, LocatedNode)>,
    },
}

impl LocatedNode {
    fn at(&self) -> (usize, usize) {
        match self {
            // A block mapping is marked after its first key; its first key
            // is where a person looks for it.
            LocatedNode::Mapping { entries, .. } if !entries.is_empty() => entries[0].0.at(),
            LocatedNode::Scalar { at, .. }
            | LocatedNode::Sequence { at, .. }
            | LocatedNode::Mapping { at, .. } => *at,
        }
    }
}

/// Builds [`LocatedNode`]s from the parser's events.
#[derive(Default)]
pub(super) struct TreeBuilder {
    /// Open collections, each with a mapping's key that still waits for its value.
    stack: Vec<(LocatedNode, Option<LocatedNode>)>,
    root: Option<LocatedNode>,
}

impl TreeBuilder {
    fn push_node(&mut self, node: LocatedNode) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some((LocatedNode::Sequence { items, .. }, _)) => items.push(node),
            Some((LocatedNode::Mapping { entries, .. }, pending_key)) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
            Some((LocatedNode::Scalar { .. }, _)) => {}
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        // yaml-rust2 counts lines from 1 and columns from 0.
        let at = (mark.line(), mark.col() + 1);
        match event {
            yaml_rust2::Event::Scalar(value, ..) => {
                self.push_node(LocatedNode::Scalar { at, value })
            }
            yaml_rust2::Event::Alias(_) => {
                self.push_node(LocatedNode::Scalar {
                    at,
                    value: String::new(),
                });
            }
            yaml_rust2::Event::SequenceStart(..) => {
                self.stack.push((
                    LocatedNode::Sequence {
                        at,
                        items: Vec::new(),
                    },
                    None,
                ));
            }
            yaml_rust2::Event::MappingStart(..) => {
                self.stack.push((
                    LocatedNode::Mapping {
                        at,
                        entries: Vec::new(),
                    },
                    None,
                ));
            }
            yaml_rust2::Event::SequenceEnd | yaml_rust2::Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    self.push_node(node);
                }
            }
            _ => {}
        }
    }
}

/// The 1-based line and column of the value (or, with `point_at_key`, the
/// key) at `path` in `text`, if the text parses and the path exists.
pub(super) fn locate(
    text: &str,
    path: &[PathSegment],
    point_at_key: bool,
) -> Option<(usize, usize)> {
    let mut builder = TreeBuilder::default();
    yaml_rust2::parser::Parser::new_from_str(text)
        .load(&mut builder, false)
        .ok()?;
    let mut node = builder.root.as_ref()?;
    let mut key_at = None;
    for segment in path {
        match (segment, node) {
            (PathSegment::Key(wanted), LocatedNode::Mapping { entries, .. }) => {
                let (key, value) = entries.iter().find(
                    |(key, _)| matches!(key, LocatedNode::Scalar { value, .. } if value == wanted),
                )?;
                key_at = Some(key.at());
                node = value;
            }
            (PathSegment::Index(index), LocatedNode::Sequence { items, .. }) => {
                key_at = None;
                node = items.get(*index)?;
            }
            _ => return None,
        }
    }
    match (point_at_key, key_at) {
        (true, Some(at)) => Some(at),
        _ => Some(node.at()),
    }
}
