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

    /// Punctuation splits words; digits are words; nothing is left of pure punctuation.
    #[test]
    fn punctuation_splits_and_digits_are_kept() {
        assert_eq!(terms("Брат-2 (2000)"), vec!["брат", "2", "2000"]);
        assert!(terms("—!?").is_empty());
    }
}
