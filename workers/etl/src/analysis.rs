//! Text analysis of the catalog index: how titles, descriptions and names become terms.
//!
//! One analyzer, [`CATALOG_ANALYZER`], is used for indexing and for queries, so both
//! sides agree: split on anything that is not a letter or digit, drop tokens over 40
//! bytes, lowercase, fold `ё` to `е`, then stem with the Russian and the English
//! Snowball stemmers. Each stemmer only touches words of its own alphabet, so a mixed
//! title ("Матрица: The Matrix Reloaded") is stemmed per word.
//!
//! Typo tolerance and prefix matching are query-side (see [`crate::search`]); this
//! module only decides what a term is.

use tantivy::Index;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer, Token,
    TokenFilter, TokenStream, Tokenizer,
};

/// Name the analyzer is registered under in every catalog index.
pub const CATALOG_ANALYZER: &str = "cinema_ru_en";

/// Longest token kept, in bytes.
const MAX_TOKEN_BYTES: usize = 40;

/// The catalog analyzer.
pub fn catalog_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .filter(YoFolding)
        .filter(Stemmer::new(Language::Russian))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The analyzer a search's highlights are made with: it marks `terms` (analyzed query
/// terms) in a text as [`catalog_analyzer`] would, with less work. Words split as the
/// catalog analyzer splits them (letters and digits, with a shortcut for ASCII and
/// Cyrillic), and a word whose first letter starts none of the terms cannot become one
/// (stemming only rewrites endings), so it becomes an empty token without being
/// lowercased or stemmed; every other word gets exactly the catalog analyzer's term.
pub fn highlight_analyzer(terms: &[String]) -> TextAnalyzer {
    let mut initials: Vec<char> = terms.iter().filter_map(|t| t.chars().next()).collect();
    initials.sort_unstable();
    initials.dedup();
    TextAnalyzer::from(HighlightTokenizer {
        initials,
        analyzer: catalog_analyzer(),
        token: Token::default(),
    })
}

/// Registers the catalog analyzer on an index (needed after every open).
pub fn register(index: &Index) {
    index
        .tokenizers()
        .register(CATALOG_ANALYZER, catalog_analyzer());
}

/// Runs the analyzer over a query or a document text and returns its terms in order.
pub fn terms(text: &str) -> Vec<String> {
    let mut analyzer = catalog_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

/// Token filter folding `ё` into `е` (lowercase input expected), so "ёлка" and "елка"
/// are one term: Russian text writes both.
#[derive(Clone, Copy, Debug)]
pub struct YoFolding;

impl TokenFilter for YoFolding {
    type Tokenizer<T: Tokenizer> = YoFoldingTokenizer<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> YoFoldingTokenizer<T> {
        YoFoldingTokenizer(tokenizer)
    }
}

#[derive(Clone)]
pub struct YoFoldingTokenizer<T>(T);

impl<T: Tokenizer> Tokenizer for YoFoldingTokenizer<T> {
    type TokenStream<'a> = YoFoldingStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        YoFoldingStream(self.0.token_stream(text))
    }
}

pub struct YoFoldingStream<T>(T);

impl<T: TokenStream> TokenStream for YoFoldingStream<T> {
    fn advance(&mut self) -> bool {
        if !self.0.advance() {
            return false;
        }
        let token = self.0.token_mut();
        if token.text.contains('ё') {
            token.text = token.text.replace('ё', "е");
        }
        true
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

/// What `SimpleTokenizer` counts as part of a word, with the common alphabets first.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '\u{0410}'..='\u{044F}' | 'ё' | 'Ё')
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// A word's first letter as the catalog analyzer's terms begin: lowercased, `ё` as `е`.
fn initial_letter(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        'А'..='Я' => char::from_u32(c as u32 + 0x20).unwrap_or(c),
        'ё' | 'Ё' => 'е',
        c if c.is_ascii() => c,
        c => {
            let lower = c.to_lowercase().next().unwrap_or(c);
            if lower == 'ё' { 'е' } else { lower }
        }
    }
}

/// See [`highlight_analyzer`].
#[derive(Clone)]
struct HighlightTokenizer {
    initials: Vec<char>,
    analyzer: TextAnalyzer,
    token: Token,
}

impl Tokenizer for HighlightTokenizer {
    type TokenStream<'a> = HighlightStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> HighlightStream<'a> {
        self.token.reset();
        HighlightStream {
            text,
            chars: text.char_indices(),
            initials: &self.initials,
            analyzer: &mut self.analyzer,
            token: &mut self.token,
        }
    }
}

struct HighlightStream<'a> {
    text: &'a str,
    chars: std::str::CharIndices<'a>,
    initials: &'a [char],
    analyzer: &'a mut TextAnalyzer,
    token: &'a mut Token,
}

impl TokenStream for HighlightStream<'_> {
    fn advance(&mut self) -> bool {
        loop {
            let start = loop {
                match self.chars.next() {
                    None => return false,
                    Some((at, c)) if is_word_char(c) => break at,
                    Some(_) => {}
                }
            };
            let end = self
                .chars
                .by_ref()
                .find(|(_, c)| !is_word_char(*c))
                .map_or(self.text.len(), |(at, _)| at);
            self.token.position = self.token.position.wrapping_add(1);
            let word = &self.text[start..end];
            if word.len() > MAX_TOKEN_BYTES {
                continue;
            }
            self.token.offset_from = start;
            self.token.offset_to = end;
            self.token.text.clear();
            let initial = word.chars().next().map(initial_letter);
            if initial.is_some_and(|c| self.initials.contains(&c)) {
                let mut analyzed = self.analyzer.token_stream(word);
                if analyzed.advance() {
                    self.token.text.push_str(&analyzed.token().text);
                }
            }
            return true;
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflected Russian forms share a term, as do English plurals.
    #[test]
    fn russian_and_english_words_are_stemmed_by_their_own_stemmer() {
        assert_eq!(terms("Матрица"), terms("матрицы"));
        assert_eq!(terms("Звёздные войны"), terms("звездная война"));
        assert_eq!(terms("wars"), terms("war"));
        assert_eq!(terms("Matrix Reloaded"), vec!["matrix", "reload"]);
    }

    /// `ё` and `е` are one letter for search, in any case.
    #[test]
    fn yo_folds_to_ye_in_any_case() {
        assert_eq!(terms("ЁЛКИ"), terms("елки"));
        assert_eq!(terms("Алёша"), terms("алеша"));
    }

    /// The highlight analyzer gives every token that could be a query term the term
    /// the catalog analyzer gives it (stemmers keep a word's first letter).
    #[test]
    fn highlight_analyzer_keeps_every_possible_match() {
        let text = "Ёлки, ёжики и Елена: skies, dying, happy Skiers — МАТРИЦЫ matrices 2000 \
            ǅemal Ωmega x҂y café naïve façade";
        let all = terms(text);
        let query: Vec<String> = terms("ёлка ёж елену небо sky die happy ski матрица matrix 2000");
        let mut analyzer = highlight_analyzer(&query);
        let mut stream = analyzer.token_stream(text);
        let mut filtered = Vec::new();
        while stream.advance() {
            filtered.push(stream.token().text.clone());
        }
        assert_eq!(filtered.len(), all.len());
        for (full, kept) in all.iter().zip(&filtered) {
            if query.contains(full) {
                assert_eq!(kept, full);
            } else {
                assert!(kept.is_empty() || kept == full, "{kept} vs {full}");
            }
        }
        assert!(
            filtered.iter().any(|t| t.is_empty()),
            "something was skipped"
        );
    }

    /// Punctuation splits words; digits are words; nothing is left of pure punctuation.
    #[test]
    fn punctuation_splits_and_digits_are_kept() {
        assert_eq!(terms("Брат-2 (2000)"), vec!["брат", "2", "2000"]);
        assert!(terms("—!?").is_empty());
    }
}
