//! Near misses of a query word: the Levenshtein automaton a search walks the term
//! dictionaries with, for typos and (for the word being typed) prefixes.
//!
//! The first character of a word is taken as typed: a near miss must start with it,
//! and the typos are counted in the rest. This is the `prefix_length: 1` of other
//! search engines, and it is what keeps a typo-tolerant search cheap. An automaton that
//! may also change the first character has to walk every branch of the dictionary's
//! first two or three bytes, and for the last word (matched as a prefix) it accepts
//! whole families of unrelated words (`star` within one edit of `tar…`), whose postings
//! all have to be read. People rarely mistype the first letter; they do mistype the
//! rest (`матирца` still finds «Матрица»).

use std::sync::OnceLock;

use levenshtein_automata::{DFA, Distance, LevenshteinAutomatonBuilder, SINK_STATE};
use tantivy_fst::Automaton;

/// Typos allowed in a word of this many characters.
pub fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// The words of a dictionary within the typo distance of a query word (or, as a
/// prefix, of a word being typed) that start with the query word's first character.
pub struct NearWords {
    /// The first character's UTF-8 bytes, matched exactly.
    head: Box<[u8]>,
    /// Edit distance of everything after `head`.
    tail: DFA,
}

/// Where [`NearWords`] is in a dictionary word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearState {
    /// This many bytes of the first character matched.
    Head(u8),
    /// Past the first character, in the tail automaton.
    Tail(u32),
    /// The first character differs: no word under this branch matches.
    Dead,
}

impl NearWords {
    /// The automaton for `word` (an analysed term) with `distance` typos (transpositions
    /// count as one); `prefix` for the word being typed, where any word that starts
    /// within the distance matches.
    pub fn new(word: &str, distance: u8, prefix: bool) -> Self {
        let split = word.chars().next().map_or(0, char::len_utf8);
        let (head, rest) = word.split_at(split);
        let builder = builder(distance);
        let tail = if prefix {
            builder.build_prefix_dfa(rest)
        } else {
            builder.build_dfa(rest)
        };
        NearWords {
            head: head.as_bytes().into(),
            tail,
        }
    }

    fn tail_start(&self) -> NearState {
        NearState::Tail(self.tail.initial_state())
    }
}

/// The parametric automaton builders (costly to make) for 0, 1 and 2 typos.
fn builder(distance: u8) -> &'static LevenshteinAutomatonBuilder {
    static BUILDERS: [OnceLock<LevenshteinAutomatonBuilder>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let distance = distance.min(2);
    BUILDERS[usize::from(distance)].get_or_init(|| LevenshteinAutomatonBuilder::new(distance, true))
}

impl Automaton for NearWords {
    type State = NearState;

    fn start(&self) -> NearState {
        if self.head.is_empty() {
            self.tail_start()
        } else {
            NearState::Head(0)
        }
    }

    fn is_match(&self, state: &NearState) -> bool {
        match *state {
            NearState::Tail(state) => matches!(self.tail.distance(state), Distance::Exact(_)),
            NearState::Head(_) | NearState::Dead => false,
        }
    }

    fn can_match(&self, state: &NearState) -> bool {
        match *state {
            NearState::Tail(state) => state != SINK_STATE,
            NearState::Head(_) => true,
            NearState::Dead => false,
        }
    }

    fn accept(&self, state: &NearState, byte: u8) -> NearState {
        match *state {
            NearState::Head(matched) => {
                let matched = usize::from(matched);
                if self.head.get(matched) != Some(&byte) {
                    NearState::Dead
                } else if matched + 1 == self.head.len() {
                    self.tail_start()
                } else {
                    NearState::Head(matched as u8 + 1)
                }
            }
            NearState::Tail(state) => NearState::Tail(self.tail.transition(state, byte)),
            NearState::Dead => NearState::Dead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(automaton: &NearWords, word: &str) -> bool {
        let mut state = automaton.start();
        for &byte in word.as_bytes() {
            state = automaton.accept(&state, byte);
        }
        automaton.is_match(&state)
    }

    #[test]
    fn typos_after_the_first_character_match_within_the_distance() {
        let near = NearWords::new("матрица", typo_distance("матрица"), false);
        assert!(accepts(&near, "матрица"));
        assert!(accepts(&near, "матирца"), "a transposition is one typo");
        assert!(accepts(&near, "матрца"), "a missing letter is one typo");
        assert!(!accepts(&near, "мтирца"), "two typos in a 7-letter word");
        assert!(
            !accepts(&near, "латрица"),
            "the first letter is taken as typed"
        );
        assert!(!accepts(&near, "матрицами"), "not a prefix match");

        let long = NearWords::new("terminator", typo_distance("terminator"), false);
        assert!(accepts(&long, "termintaor"));
        assert!(accepts(&long, "terminatr"));
        assert!(!accepts(&long, "determinator"));
    }

    #[test]
    fn the_word_being_typed_matches_as_a_prefix_with_its_typos() {
        let typing = NearWords::new("матр", typo_distance("матр"), true);
        assert!(accepts(&typing, "матрица"));
        assert!(accepts(&typing, "мадрид"), "one typo in the prefix");
        assert!(!accepts(&typing, "атр"));
        assert!(
            !accepts(&typing, "тарзан"),
            "not a near prefix once the first letter is fixed"
        );

        let short = NearWords::new("ma", 0, true);
        assert!(accepts(&short, "matrix"));
        assert!(!accepts(&short, "mo"));
        let one = NearWords::new("m", 0, true);
        assert!(accepts(&one, "m"));
        assert!(accepts(&one, "moscow"));
        assert!(!accepts(&one, "n"));
    }

    #[test]
    fn dead_branches_are_pruned() {
        let near = NearWords::new("star", 1, true);
        let dead = near.accept(&near.start(), b't');
        assert!(!near.can_match(&dead));
        let alive = near.accept(&near.start(), b's');
        assert!(near.can_match(&alive));
    }
}
