//! Near misses of a query word: the automaton a search walks the term dictionaries
//! with, for typos and (for the word being typed) prefixes.
//!
//! The first character of a word is taken as typed: a near miss must start with it,
//! and the typos are counted in the rest. This is the `prefix_length: 1` of other
//! search engines, and it is what keeps a typo-tolerant search cheap. An automaton that
//! may also change the first character has to walk every branch of the dictionary's
//! first two or three bytes, and for the last word (matched as a prefix) it accepts
//! whole families of unrelated words (`star` within one edit of `tar…`), whose postings
//! all have to be read. People rarely mistype the first letter; they do mistype the
//! rest (`матирца` still finds «Матрица»).
//!
//! The rest is matched by simulating the Levenshtein automaton (with transpositions,
//! as `levenshtein_automata` counts them) a machine word at a time ([`TypoBits`]):
//! nothing is built per query beyond a table of where each letter sits in the word.
//! Building `levenshtein_automata`'s DFA instead (a kilobyte per state) was about 6%
//! of a search's CPU. Words too long for a machine word (over 62 characters after the
//! first) still get that DFA.
//!
//! A property test holds the automaton to the textbook edit-distance table, and for
//! whole words to `levenshtein_automata`'s DFA, pruning included. For the word being
//! typed it is the promise above (some beginning of the dictionary word within the
//! distance), which that crate's prefix DFA breaks in one corner: a beginning reached
//! only by dropping two leading letters of the query (`b` for `ccb`) matches alone but
//! not once followed by more letters (`bx`).

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

/// Most typos [`TypoBits`] counts (and [`typo_distance`] asks for).
const MAX_TYPOS: usize = 2;
/// Longest word [`TypoBits`] simulates: bit `i` stands for "`i` letters read", so a
/// word of `n` letters needs `n + 1` bits, and shifting must not lose the top one.
const MAX_BITS_LETTERS: usize = 62;

/// The words of a dictionary within the typo distance of a query word (or, as a
/// prefix, of a word being typed) that start with the query word's first character.
pub struct NearWords {
    /// The first character's UTF-8 bytes, matched exactly.
    head: Box<[u8]>,
    /// Edit distance of everything after `head`.
    tail: Tail,
}

enum Tail {
    /// Boxed: its table of ASCII positions is a kilobyte.
    Bits(Box<TypoBits>),
    Dfa(DFA),
}

/// Where [`NearWords`] is in a dictionary word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearState {
    /// This many bytes of the first character matched.
    Head(u8),
    /// Past the first character, in the bit-parallel automaton.
    Bits(BitsState),
    /// Past the first character, in the DFA of a long word.
    Dfa(u32),
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
        let distance = distance.min(MAX_TYPOS as u8);
        let tail = match TypoBits::new(rest, distance, prefix) {
            Some(bits) => Tail::Bits(Box::new(bits)),
            None => {
                let builder = builder(distance);
                Tail::Dfa(if prefix {
                    builder.build_prefix_dfa(rest)
                } else {
                    builder.build_dfa(rest)
                })
            }
        };
        NearWords {
            head: head.as_bytes().into(),
            tail,
        }
    }

    fn tail_start(&self) -> NearState {
        match &self.tail {
            Tail::Bits(bits) => NearState::Bits(bits.start()),
            Tail::Dfa(dfa) => NearState::Dfa(dfa.initial_state()),
        }
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
        match (state, &self.tail) {
            (NearState::Bits(state), Tail::Bits(bits)) => bits.is_match(state),
            (NearState::Dfa(state), Tail::Dfa(dfa)) => {
                matches!(dfa.distance(*state), Distance::Exact(_))
            }
            _ => false,
        }
    }

    fn can_match(&self, state: &NearState) -> bool {
        match state {
            NearState::Bits(state) => state.is_alive(),
            NearState::Dfa(state) => *state != SINK_STATE,
            NearState::Head(_) => true,
            NearState::Dead => false,
        }
    }

    fn accept(&self, state: &NearState, byte: u8) -> NearState {
        match (*state, &self.tail) {
            (NearState::Head(matched), _) => {
                let matched = usize::from(matched);
                if self.head.get(matched) != Some(&byte) {
                    NearState::Dead
                } else if matched + 1 == self.head.len() {
                    self.tail_start()
                } else {
                    NearState::Head(matched as u8 + 1)
                }
            }
            (NearState::Bits(state), Tail::Bits(bits)) => NearState::Bits(bits.accept(state, byte)),
            (NearState::Dfa(state), Tail::Dfa(dfa)) => NearState::Dfa(dfa.transition(state, byte)),
            _ => NearState::Dead,
        }
    }
}

/// The Levenshtein automaton of a word, with transpositions, simulated a machine word
/// at a time (Wu and Manber's bit-parallel NFA, with Oflazer's and Schulz and Mihov's
/// transposition states) over the UTF-8 bytes of dictionary words.
///
/// The NFA's states are (letters of the word read, typos made). `levels[e]` holds the
/// states with at most `e` typos, bit `i` for `i` letters read; `swaps[e]` the
/// transpositions half done (the next letter of the word was read first, at the cost
/// of a typo, and the one before it must follow). A letter `c` of the dictionary word
/// moves them all at once with `letters(c)`, the positions after each `c` of the word:
///
/// - a match advances a state: `(levels[e] << 1) & letters(c)`;
/// - an extra letter costs a typo and stays: `levels[e - 1]`;
/// - a wrong letter costs a typo and advances: `levels[e - 1] << 1`;
/// - a missing letter costs a typo and advances without reading: `new[e - 1] << 1`;
/// - a transposition's second letter completes it: `((swaps[e] << 1) & letters(c)) << 1`.
struct TypoBits {
    /// `letters(c)` for ASCII `c`.
    ascii: [u64; 128],
    /// `letters(c)` for the rest, as (code point, positions); a word has few.
    others: Vec<(u32, u64)>,
    /// Letters in the word.
    len: u32,
    distance: usize,
    prefix: bool,
}

/// Where [`TypoBits`] is: the NFA's active states and a letter being decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BitsState {
    levels: [u64; MAX_TYPOS + 1],
    swaps: [u64; MAX_TYPOS + 1],
    /// The code point decoded so far, and how many continuation bytes it still needs.
    partial: u32,
    pending: u8,
    /// In prefix mode, a beginning of the dictionary word matched: every word under it
    /// does.
    matched: bool,
}

impl BitsState {
    fn is_alive(&self) -> bool {
        self.matched || self.levels.iter().chain(&self.swaps).any(|&bits| bits != 0)
    }
}

impl TypoBits {
    /// `None` when the word is too long to simulate in a machine word.
    fn new(word: &str, distance: u8, prefix: bool) -> Option<Self> {
        let mut ascii = [0u64; 128];
        let mut others: Vec<(u32, u64)> = Vec::new();
        let mut len = 0usize;
        for letter in word.chars() {
            len += 1;
            if len > MAX_BITS_LETTERS {
                return None;
            }
            let bit = 1u64 << len;
            let code = u32::from(letter);
            if code < 128 {
                ascii[code as usize] |= bit;
            } else if let Some(entry) = others.iter_mut().find(|(known, _)| *known == code) {
                entry.1 |= bit;
            } else {
                others.push((code, bit));
            }
        }
        Some(Self {
            ascii,
            others,
            len: len as u32,
            distance: usize::from(distance),
            prefix,
        })
    }

    /// Bits `0..=len`: the states that exist.
    fn all(&self) -> u64 {
        (1u64 << (self.len + 1)) - 1
    }

    fn letters(&self, code: u32) -> u64 {
        if code < 128 {
            self.ascii[code as usize]
        } else {
            self.others
                .iter()
                .find(|(known, _)| *known == code)
                .map_or(0, |&(_, bits)| bits)
        }
    }

    fn start(&self) -> BitsState {
        // Missing letters at the start: `e` typos reach `e` letters read.
        let mut levels = [0u64; MAX_TYPOS + 1];
        for (typos, level) in levels.iter_mut().enumerate().take(self.distance + 1) {
            *level = ((1u64 << (typos + 1)) - 1) & self.all();
        }
        let mut state = BitsState {
            levels,
            swaps: [0; MAX_TYPOS + 1],
            partial: 0,
            pending: 0,
            matched: false,
        };
        state.matched = self.prefix && self.reached_end(&state);
        state
    }

    fn reached_end(&self, state: &BitsState) -> bool {
        state.levels[self.distance] & (1u64 << self.len) != 0
    }

    fn is_match(&self, state: &BitsState) -> bool {
        if self.prefix {
            state.matched
        } else {
            state.pending == 0 && self.reached_end(state)
        }
    }

    fn accept(&self, mut state: BitsState, byte: u8) -> BitsState {
        if state.matched {
            return state;
        }
        let code = match (state.pending, byte) {
            (0, 0x00..=0x7F) => u32::from(byte),
            (0, 0xC0..=0xDF) => return decoding(state, u32::from(byte & 0x1F), 1),
            (0, 0xE0..=0xEF) => return decoding(state, u32::from(byte & 0x0F), 2),
            (0, 0xF0..=0xF7) => return decoding(state, u32::from(byte & 0x07), 3),
            // A stray byte (dictionary words are UTF-8, so never): a letter of no word.
            (0, _) => u32::MAX,
            (1, _) => (state.partial << 6) | u32::from(byte & 0x3F),
            (pending, _) => {
                return decoding(
                    state,
                    (state.partial << 6) | u32::from(byte & 0x3F),
                    pending - 1,
                );
            }
        };
        state.pending = 0;
        state.partial = 0;
        self.read(state, self.letters(code))
    }

    /// Moves every state over one letter of the dictionary word, at the positions
    /// `letters` of the query word.
    fn read(&self, mut state: BitsState, letters: u64) -> BitsState {
        let all = self.all();
        let old = state.levels;
        state.levels[0] = (old[0] << 1) & letters;
        for typos in 1..=self.distance {
            let swapped = ((state.swaps[typos] << 1) & letters) << 1;
            state.levels[typos] = (((old[typos] << 1) & letters)
                | old[typos - 1]
                | (old[typos - 1] << 1)
                | (state.levels[typos - 1] << 1)
                | swapped)
                & all;
            // The next letter of the word read first: a transposition begins.
            state.swaps[typos] = old[typos - 1] & (letters >> 2);
        }
        state.matched = self.prefix && self.reached_end(&state);
        state
    }
}

fn decoding(mut state: BitsState, partial: u32, pending: u8) -> BitsState {
    state.partial = partial;
    state.pending = pending;
    state
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

    /// The DFA `levenshtein_automata` builds for the same word (whole words only),
    /// run over `candidate`: whether it matches, and whether it was still alive after
    /// each of its letters.
    fn dfa_walk(word: &str, distance: u8, candidate: &str) -> (bool, Vec<bool>) {
        let dfa = builder(distance).build_dfa(word);
        let mut state = dfa.initial_state();
        let mut alive = vec![state != SINK_STATE];
        for letter in candidate.chars() {
            let mut bytes = [0u8; 4];
            for &byte in letter.encode_utf8(&mut bytes).as_bytes() {
                state = dfa.transition(state, byte);
            }
            alive.push(state != SINK_STATE);
        }
        (matches!(dfa.distance(state), Distance::Exact(_)), alive)
    }

    /// Edit distance with adjacent transpositions (optimal string alignment), by the
    /// textbook table.
    fn osa_distance(a: &[char], b: &[char]) -> usize {
        let mut table = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in table.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in table[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (table[i - 1][j] + 1)
                    .min(table[i][j - 1] + 1)
                    .min(table[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(table[i - 2][j - 2] + 1);
                }
                table[i][j] = best;
            }
        }
        table[a.len()][b.len()]
    }

    /// What [`NearWords`] promises of its tail: the candidate (or, for the word being
    /// typed, some beginning of it) is within `distance` edits of the word.
    fn reference_match(word: &str, distance: u8, prefix: bool, candidate: &str) -> bool {
        let word: Vec<char> = word.chars().collect();
        let candidate: Vec<char> = candidate.chars().collect();
        let ends = if prefix {
            0..=candidate.len()
        } else {
            candidate.len()..=candidate.len()
        };
        ends.into_iter()
            .any(|end| osa_distance(&word, &candidate[..end]) <= usize::from(distance))
    }

    fn bits_walk(word: &str, distance: u8, prefix: bool, candidate: &str) -> (bool, Vec<bool>) {
        let bits = TypoBits::new(word, distance, prefix).expect("a short word");
        let mut state = bits.start();
        let mut alive = vec![state.is_alive()];
        for letter in candidate.chars() {
            let mut bytes = [0u8; 4];
            for &byte in letter.encode_utf8(&mut bytes).as_bytes() {
                state = bits.accept(state, byte);
            }
            alive.push(state.is_alive());
        }
        (bits.is_match(&state), alive)
    }

    /// Words over a few letters (ASCII, Cyrillic, one of three bytes), so that near
    /// misses, repeats and transpositions are frequent.
    fn small_word(max: usize) -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec(
            proptest::sample::select(vec!['a', 'b', 'c', 'м', 'а', 'т', 'ё', '€']),
            0..max,
        )
        .prop_map(|letters| letters.into_iter().collect())
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn the_bit_parallel_automaton_matches_within_the_edit_distance(
            word in small_word(9),
            candidate in small_word(12),
            distance in 0u8..=2,
            prefix in any::<bool>(),
        ) {
            let (matched, alive) = bits_walk(&word, distance, prefix, &candidate);
            prop_assert_eq!(
                matched,
                reference_match(&word, distance, prefix, &candidate),
                "word {:?}, candidate {:?}, distance {}, prefix {}", word, candidate, distance, prefix
            );
            if prefix {
                // Once a beginning matched, every longer word does: never pruned.
                if let Some(first) = (0..=candidate.chars().count()).find(|&end| {
                    reference_match(&word, distance, false, &candidate.chars().take(end).collect::<String>())
                }) {
                    prop_assert!(alive[first..].iter().all(|&alive| alive));
                }
            } else {
                // Whole words: exactly what levenshtein_automata's DFA (the reference
                // before this automaton) answers, pruning included.
                prop_assert_eq!(
                    (matched, alive),
                    dfa_walk(&word, distance, &candidate),
                    "word {:?}, candidate {:?}, distance {}", word, candidate, distance
                );
            }
        }
    }

    #[test]
    fn words_too_long_for_a_machine_word_fall_back_to_the_dfa() {
        let long: String = std::iter::repeat_n('a', 70).collect();
        let near = NearWords::new(&long, 2, false);
        assert!(matches!(near.tail, Tail::Dfa(_)));
        let mut typo = long.clone();
        typo.replace_range(30..31, "b");
        assert!(accepts(&near, &typo));
        assert!(!accepts(&near, &long[..60]));
    }
}
