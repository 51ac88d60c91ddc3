//! A conversation's messages as a tree: each message follows its parent, an
//! answer regenerated is a second child of its question, and an edited
//! question a second child of the answer before it. The conversation shows
//! one branch, from the first message to its remembered leaf.

use app::wire::Versions;
use std::collections::HashMap;

/// Where one message sits in the tree.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub id: String,
    pub parent: Option<String>,
    /// Insertion order within the conversation.
    pub seq: i64,
}

pub(super) struct Tree {
    parents: HashMap<String, Option<String>>,
    /// Children of each message (`None`: the first messages), oldest first.
    children: HashMap<Option<String>, Vec<String>>,
}

impl Tree {
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by_key(|n| n.seq);
        let mut children: HashMap<Option<String>, Vec<String>> = HashMap::new();
        let mut parents = HashMap::with_capacity(nodes.len());
        for node in nodes {
            children
                .entry(node.parent.clone())
                .or_default()
                .push(node.id.clone());
            parents.insert(node.id, node.parent);
        }
        Self { parents, children }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.parents.contains_key(id)
    }

    pub fn parent(&self, id: &str) -> Option<&str> {
        self.parents.get(id).and_then(|p| p.as_deref())
    }

    /// The branch from the first message to `leaf`, first message first.
    /// Without a (known) leaf: the newest branch.
    pub fn path_to(&self, leaf: Option<&str>) -> Vec<String> {
        let leaf = match leaf.filter(|id| self.contains(id)) {
            Some(id) => id.to_owned(),
            None => match self.newest_under(None) {
                Some(id) => id,
                None => return Vec::new(),
            },
        };
        let mut path = vec![leaf];
        // Bounded by the number of messages, so a corrupt cycle can't loop.
        while path.len() <= self.parents.len() {
            match self.parent(path.last().map_or("", String::as_str)) {
                Some(parent) => path.push(parent.to_owned()),
                None => break,
            }
        }
        path.reverse();
        path
    }

    /// The leaf reached from `from` by always taking the newest child: where
    /// switching to a version lands (with every later turn of that branch).
    pub fn newest_leaf_from(&self, from: &str) -> String {
        self.newest_under(Some(from.to_owned()))
            .unwrap_or_else(|| from.to_owned())
    }

    fn newest_under(&self, from: Option<String>) -> Option<String> {
        let mut at = from;
        for _ in 0..=self.parents.len() {
            match self.children.get(&at).and_then(|c| c.last()) {
                Some(child) => at = Some(child.clone()),
                None => break,
            }
        }
        at
    }

    /// The versions `id` is one of (its parent's children), when there are
    /// two or more.
    pub fn versions(&self, id: &str) -> Option<Versions> {
        let parent = self.parents.get(id)?.clone();
        let siblings = self.children.get(&parent)?;
        if siblings.len() < 2 {
            return None;
        }
        let index = siblings.iter().position(|s| s == id)?;
        Some(Versions {
            position: index + 1,
            count: siblings.len(),
            previous: index.checked_sub(1).map(|i| siblings[i].clone()),
            next: siblings.get(index + 1).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, parent: Option<&str>, seq: i64) -> Node {
        Node {
            id: id.into(),
            parent: parent.map(Into::into),
            seq,
        }
    }

    /// q1 → a1, a1' (regenerated); a1 → q2 → a2; a1 → q2' (edited) → a2'.
    fn branched() -> Tree {
        Tree::new(vec![
            node("q1", None, 1),
            node("a1", Some("q1"), 2),
            node("q2", Some("a1"), 3),
            node("a2", Some("q2"), 4),
            node("a1'", Some("q1"), 5),
            node("q2'", Some("a1"), 6),
            node("a2'", Some("q2'"), 7),
        ])
    }

    #[test]
    fn the_branch_runs_from_the_first_message_to_the_leaf() {
        let tree = branched();
        assert_eq!(tree.path_to(Some("a2")), ["q1", "a1", "q2", "a2"]);
        assert_eq!(tree.path_to(Some("a1'")), ["q1", "a1'"]);
        // No leaf, or an unknown one: the newest branch.
        assert_eq!(tree.path_to(None), ["q1", "a1'"]);
        assert_eq!(tree.path_to(Some("gone")), ["q1", "a1'"]);
        assert!(Tree::new(Vec::new()).path_to(None).is_empty());
    }

    #[test]
    fn switching_lands_on_the_newest_turn_of_that_branch() {
        let tree = branched();
        assert_eq!(tree.newest_leaf_from("a1"), "a2'");
        assert_eq!(tree.newest_leaf_from("q2"), "a2");
        assert_eq!(tree.newest_leaf_from("a2"), "a2");
    }

    #[test]
    fn versions_are_siblings_oldest_first() {
        let tree = branched();
        let a1 = tree.versions("a1").unwrap();
        assert_eq!((a1.position, a1.count), (1, 2));
        assert_eq!(a1.previous, None);
        assert_eq!(a1.next.as_deref(), Some("a1'"));
        let edited = tree.versions("q2'").unwrap();
        assert_eq!((edited.position, edited.count), (2, 2));
        assert_eq!(edited.previous.as_deref(), Some("q2"));
        assert!(tree.versions("q1").is_none());
        assert!(tree.versions("a2").is_none());
    }

    #[test]
    fn a_cycle_in_corrupt_rows_ends() {
        let tree = Tree::new(vec![node("a", Some("b"), 1), node("b", Some("a"), 2)]);
        assert!(tree.path_to(Some("a")).len() <= 3);
    }
}
