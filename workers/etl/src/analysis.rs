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
//!
//! The analyzer is built for speed, with the same terms as tantivy's stock filters:
//! words split with a fast path for ASCII and Cyrillic ([`WordTokenizer`]), and each
//! analyzer remembers the term of every word it has seen ([`RememberedTerms`]), so
//! lowercasing and stemming run once per distinct word of an indexing thread, not once
//! per occurrence. The query side (highlights) looks words up in one memory shared by
//! every search thread ([`term_of_word`]), so the catalog's vocabulary is stemmed once
//! per process, not once per search.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use tantivy::Index;
use tantivy::tokenizer::{
    Language, LowerCaser, RawTokenizer, RemoveLongFilter, Stemmer, TextAnalyzer, Token,
    TokenFilter, TokenStream, Tokenizer,
};

/// Name the analyzer is registered under in every catalog index.
pub const CATALOG_ANALYZER: &str = "cinema_ru_en";

/// Longest token kept, in bytes.
const MAX_TOKEN_BYTES: usize = 40;

/// Most words a [`RememberedTerms`] keeps before it starts over (a few MB).
const REMEMBERED_WORDS: usize = 100_000;

/// The catalog analyzer.
pub fn catalog_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(RememberedTerms::default())
        .build()
}

/// What one word becomes: lowercased, `ё` folded, stemmed by the Russian and then the
/// English stemmer (tantivy's filters, applied to the word alone).
fn word_to_term() -> TextAnalyzer {
    TextAnalyzer::builder(RawTokenizer::default())
        .filter(LowerCaser)
        .filter(YoFolding)
        .filter(Stemmer::new(Language::Russian))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// Registers the catalog analyzer on an index (needed after every open).
pub fn register(index: &Index) {
    index
        .tokenizers()
        .register(CATALOG_ANALYZER, catalog_analyzer());
}

/// Terms of the words the query side has analyzed, shared by every search thread (a
/// word's term depends on nothing else). At most [`REMEMBERED_WORDS`] words (a few
/// MB); past that it starts over.
static SHARED_TERMS: LazyLock<RwLock<HashMap<String, String>>> = LazyLock::new(RwLock::default);

thread_local! {
    /// The word-to-term chain of a search thread, for words not remembered yet.
    static WORD_TO_TERM: RefCell<TextAnalyzer> = RefCell::new(word_to_term());
}

/// Calls `with` on the term the catalog analyzer makes of `word` (one word as
/// [`words`] yields it: a run of letters and digits shorter than [`MAX_TOKEN_BYTES`]),
/// or returns `None` for a word the analyzer drops.
pub(crate) fn term_of_word<R>(word: &str, with: impl FnOnce(&str) -> R) -> Option<R> {
    if word.is_empty() || word.len() >= MAX_TOKEN_BYTES {
        return None;
    }
    if let Some(term) = SHARED_TERMS
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(word)
    {
        return Some(with(term));
    }
    let term = WORD_TO_TERM.with(|analyzer| {
        let mut analyzer = analyzer.borrow_mut();
        let mut stream = analyzer.token_stream(word);
        if stream.advance() {
            stream.token().text.clone()
        } else {
            word.to_owned()
        }
    });
    let answer = with(&term);
    let mut shared = SHARED_TERMS.write().unwrap_or_else(|p| p.into_inner());
    if shared.len() >= REMEMBERED_WORDS {
        shared.clear();
    }
    shared.insert(word.to_owned(), term);
    Some(answer)
}

/// The terms the catalog analyzer makes of a text (a query), in order, through the
/// shared memory of [`term_of_word`].
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .filter_map(|(from, to)| term_of_word(&text[from..to], str::to_owned))
        .collect()
}

/// Splits text into words as tantivy's `SimpleTokenizer` does (runs of letters and
/// digits; same offsets and positions), checking ASCII and Cyrillic letters before the
/// Unicode tables.
#[derive(Clone, Default)]
pub struct WordTokenizer {
    token: Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        self.token.reset();
        WordStream {
            text,
            at: 0,
            token: &mut self.token,
        }
    }
}

pub struct WordStream<'a> {
    text: &'a str,
    /// Byte offset where the next word is looked for.
    at: usize,
    token: &'a mut Token,
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        let Some((start, end)) = next_word(self.text, &mut self.at) else {
            return false;
        };
        self.token.offset_from = start;
        self.token.offset_to = end;
        self.token.text.push_str(&self.text[start..end]);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Token filter turning each word into its term ([`word_to_term`]) and remembering the
/// answer, so a word seen before costs one lookup. Each analyzer (one per field of an
/// indexing thread's segment, one per query) has its own memory of at most
/// [`REMEMBERED_WORDS`] words.
#[derive(Clone)]
pub struct RememberedTerms {
    to_term: TextAnalyzer,
    terms: HashMap<String, String>,
}

impl Default for RememberedTerms {
    fn default() -> Self {
        Self {
            to_term: word_to_term(),
            terms: HashMap::new(),
        }
    }
}

impl TokenFilter for RememberedTerms {
    type Tokenizer<T: Tokenizer> = RememberedTermsTokenizer<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> RememberedTermsTokenizer<T> {
        RememberedTermsTokenizer {
            inner: tokenizer,
            memory: self,
        }
    }
}

#[derive(Clone)]
pub struct RememberedTermsTokenizer<T> {
    inner: T,
    memory: RememberedTerms,
}

impl<T: Tokenizer> Tokenizer for RememberedTermsTokenizer<T> {
    type TokenStream<'a> = RememberedTermsStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        RememberedTermsStream {
            tail: self.inner.token_stream(text),
            memory: &mut self.memory,
        }
    }
}

pub struct RememberedTermsStream<'a, T> {
    tail: T,
    memory: &'a mut RememberedTerms,
}

impl<T: TokenStream> TokenStream for RememberedTermsStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(term) = self.memory.terms.get(&token.text) {
            token.text.clear();
            token.text.push_str(term);
            return true;
        }
        let word = std::mem::take(&mut token.text);
        let term = {
            let mut stream = self.memory.to_term.token_stream(&word);
            if stream.advance() {
                stream.token().text.clone()
            } else {
                word.clone()
            }
        };
        if self.memory.terms.len() >= REMEMBERED_WORDS {
            self.memory.terms.clear();
        }
        token.text.push_str(&term);
        self.memory.terms.insert(word, term);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
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

/// What `SimpleTokenizer` counts as part of a word (the scanner's byte shortcuts in
/// [`word_char_at`] answer the common alphabets before it is asked).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether the character starting at byte `at` of `text` is part of a word, and its
/// length in bytes. ASCII and the Cyrillic block (whose first 128 code points, lead
/// bytes `0xD0` and `0xD1`, are all letters) are told from their bytes; anything else
/// is decoded and asked [`is_word_char`].
#[inline]
fn word_char_at(text: &str, at: usize) -> (bool, usize) {
    let bytes = text.as_bytes();
    match bytes[at] {
        byte if byte.is_ascii() => (byte.is_ascii_alphanumeric(), 1),
        0xD0 | 0xD1 => (true, 2),
        _ => {
            let c = text[at..].chars().next().unwrap_or_default();
            (is_word_char(c), c.len_utf8())
        }
    }
}

/// The byte ranges of the words [`catalog_analyzer`] makes tokens of, in order: runs of
/// letters and digits, shorter than [`MAX_TOKEN_BYTES`].
pub(crate) fn words(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        loop {
            let (start, end) = next_word(text, &mut at)?;
            if end - start < MAX_TOKEN_BYTES {
                return Some((start, end));
            }
        }
    })
}

/// The byte range of the next word of `text` at or after byte `at`, which it moves past
/// the word and the character that ended it.
fn next_word(text: &str, at: &mut usize) -> Option<(usize, usize)> {
    let mut i = *at;
    let start = loop {
        if i >= text.len() {
            *at = i;
            return None;
        }
        let (is_word, len) = word_char_at(text, i);
        if is_word {
            break i;
        }
        i += len;
    };
    while i < text.len() {
        let (is_word, len) = word_char_at(text, i);
        if !is_word {
            *at = i + len;
            return Some((start, i));
        }
        i += len;
    }
    *at = i;
    Some((start, i))
}

/// A word's first letter as the catalog analyzer's terms begin: lowercased, `ё` as `е`.
/// Stemming only rewrites endings, so a word can only become a term with this initial.
pub(crate) fn initial_letter(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        'А'..='Я' => char::from_u32(c as u32 + 0x20).unwrap_or(c),
        'а'..='я' => c,
        'ё' | 'Ё' => 'е',
        c if c.is_ascii() => c,
        c => {
            let lower = c.to_lowercase().next().unwrap_or(c);
            if lower == 'ё' { 'е' } else { lower }
        }
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

    /// The word scanner reads ASCII and the first 128 Cyrillic code points from their
    /// bytes: they must be the characters [`is_word_char`] says they are.
    #[test]
    fn the_byte_shortcuts_agree_with_the_word_characters() {
        for c in ('\0'..='\u{7F}').chain('\u{0400}'..='\u{047F}') {
            let text = c.to_string();
            assert_eq!(
                word_char_at(&text, 0),
                (is_word_char(c), c.len_utf8()),
                "{c:?}"
            );
        }
        assert_eq!(
            words("a҂b Ωmega, ёж").collect::<Vec<_>>(),
            [(0, 1), (3, 4), (5, 11), (13, 17)]
        );
    }

    /// `ё` and `е` are one letter for search, in any case.
    #[test]
    fn yo_folds_to_ye_in_any_case() {
        assert_eq!(terms("ЁЛКИ"), terms("елки"));
        assert_eq!(terms("Алёша"), terms("алеша"));
    }

    /// The words split out for highlighting are the catalog analyzer's tokens, and
    /// each analyzes to a term starting with its initial letter.
    #[test]
    fn words_are_the_analyzers_tokens_and_keep_their_initial() {
        let text = format!(
            "Ёлки, ёжики и Елена: skies, dying, happy Skiers — МАТРИЦЫ matrices 2000 \
            ǅemal Ωmega x҂y café naïve façade {} {} ok",
            "a".repeat(39),
            "b".repeat(40)
        );
        let all = terms(&text);
        let words: Vec<&str> = words(&text).map(|(from, to)| &text[from..to]).collect();
        assert_eq!(words.len(), all.len(), "{words:?}");
        for (word, term) in words.iter().zip(&all) {
            assert_eq!(terms(word), vec![term.clone()]);
            let initial = word.chars().next().map(initial_letter);
            assert_eq!(initial, term.chars().next(), "{word} -> {term}");
        }
    }

    /// The catalog analyzer gives exactly the tokens of tantivy's stock chain
    /// (`SimpleTokenizer`, the length limit, lowercasing, `ё` folding, both stemmers):
    /// texts, offsets and positions, for words seen once and seen again.
    #[test]
    fn the_fast_analyzer_equals_tantivys_stock_filters() {
        use tantivy::tokenizer::SimpleTokenizer;
        let mut stock = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
            .filter(LowerCaser)
            .filter(YoFolding)
            .filter(Stemmer::new(Language::Russian))
            .filter(Stemmer::new(Language::English))
            .build();
        let texts = [
            "Ёлки, ёжики и Елена: skies, dying, happy Skiers — МАТРИЦЫ matrices 2000".to_owned(),
            "ǅemal Ωmega x҂y café naïve façade ÀÉÎÕÜ straße İstanbul ΣΊΣΥΦΟΣ".to_owned(),
            "Матрица: Перезагрузка. Матрицы, матрицу! The Matrix Reloaded; matrix's".to_owned(),
            format!(
                "{} {} short {}",
                "a".repeat(39),
                "b".repeat(40),
                "Я".repeat(20)
            ),
            "mixedЯзык Word123 ３４５ ٣٤٥ tab\tnew\nline — «ёлочка» “quoted”".to_owned(),
            String::new(),
        ];
        let mut fast = catalog_analyzer();
        let tokens = |analyzer: &mut TextAnalyzer, text: &str| {
            let mut stream = analyzer.token_stream(text);
            let mut out = Vec::new();
            while stream.advance() {
                let t = stream.token();
                out.push((t.text.clone(), t.offset_from, t.offset_to, t.position));
            }
            out
        };
        // Twice, so the second pass answers from what the analyzer remembers (and the
        // query side from the shared memory of terms).
        for _ in 0..2 {
            for text in &texts {
                let expected = tokens(&mut stock, text);
                assert_eq!(tokens(&mut fast, text), expected, "{text}");
                let query_terms: Vec<String> = expected.into_iter().map(|t| t.0).collect();
                assert_eq!(terms(text), query_terms, "query terms of {text}");
            }
        }
    }

    /// Punctuation splits words; digits are words; nothing is left of pure punctuation.
    #[test]
    fn punctuation_splits_and_digits_are_kept() {
        assert_eq!(terms("Брат-2 (2000)"), vec!["брат", "2", "2000"]);
        assert!(terms("—!?").is_empty());
    }
}
