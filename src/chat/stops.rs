//! Stop sequences (the OpenAI API's `stop`): the answer ends where one
//! appears, without it. Text that could be the start of one is held back
//! until the next piece shows whether it is, so no reader ever sees part of
//! a stop sequence, whichever model streams the answer.

/// The stop sequences of one answer and the text held back so far.
#[derive(Debug, Default)]
pub struct StopSequences {
    stops: Vec<String>,
    held: String,
}

impl StopSequences {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Takes the next piece of the answer: the text that may be shown now,
    /// and whether a stop sequence ended the answer (then nothing after it
    /// is shown).
    pub fn feed(&mut self, piece: &str) -> (String, bool) {
        if self.stops.is_empty() {
            return (piece.to_owned(), false);
        }
        self.held.push_str(piece);
        let first = self
            .stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()))
            .min();
        if let Some(at) = first {
            let shown = self.held[..at].to_owned();
            self.held.clear();
            return (shown, true);
        }
        let keep = self
            .stops
            .iter()
            .map(|stop| started(&self.held, stop))
            .max()
            .unwrap_or(0);
        let shown: String = self.held.drain(..self.held.len() - keep).collect();
        (shown, false)
    }

    /// What is still held back when the answer ends by itself.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest proper start of `stop` that `text` ends with.
fn started(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .filter(|&k| stop.is_char_boundary(k))
        .find(|&k| text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::StopSequences;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopSequences::new(stops.iter().map(|s| s.to_string()).collect());
        let mut shown = String::new();
        for piece in pieces {
            let (text, stopped) = s.feed(piece);
            shown.push_str(&text);
            if stopped {
                return (shown, true);
            }
        }
        shown.push_str(&s.flush());
        (shown, false)
    }

    #[test]
    fn a_stop_split_over_pieces_ends_the_answer_before_it() {
        assert_eq!(
            run(&["END"], &["Hello E", "N", "D and more"]),
            ("Hello ".into(), true)
        );
        assert_eq!(run(&["\n\n"], &["a\n", "\nb"]), ("a".into(), true));
    }

    #[test]
    fn text_that_only_looks_like_a_start_is_shown_later() {
        assert_eq!(run(&["END"], &["Hello E", "ND?"]), ("Hello ".into(), true));
        assert_eq!(
            run(&["END"], &["Hello E", "nd"]),
            ("Hello End".into(), false)
        );
        let mut s = StopSequences::new(vec!["END".into()]);
        assert_eq!(s.feed("ab E"), ("ab ".into(), false));
        assert_eq!(s.feed("x"), ("Ex".into(), false));
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_none_passes_everything() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".into(), true));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&[""], &["a"]), ("a".into(), false));
        assert_eq!(run(&["é!"], &["caf", "é", "!"]), ("caf".into(), true));
    }
}
