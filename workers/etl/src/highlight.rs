//! Highlights of a search: the query's terms marked with `<b>` in the best fragment of a
//! film's title and description, as HTML.
//!
//! The answer is exactly what tantivy's `SnippetGenerator` gives with the catalog
//! analyzer (a test compares the two on every kind of text): the text is cut into
//! fragments of at most [`Highlighter::new`]'s `max_bytes` (a new fragment starts at the
//! first word that would end past the limit), a fragment scores one per word whose term
//! is a query term, the best fragment is the highest-scoring one (the first of equals),
//! and its text is HTML-escaped with the matching words wrapped in `<b>…</b>`; a text
//! with no match gives an empty string.
//!
//! It gets there with less work, which matters because every hit on a result page is
//! highlighted twice: one pass over the text with no token stream, no fragment list and
//! no intermediate strings, and a word is analyzed (lowercased, stemmed) only when its
//! first letter starts a query term (stemming only rewrites endings, so no other word
//! can become one), through the memory of terms every search shares
//! ([`analysis::term_of_word`]).

use crate::analysis;

/// Marks one search's terms in texts; made once per search, used for every hit.
pub struct Highlighter {
    terms: Vec<String>,
    /// First letters of `terms`, as the analyzer writes them.
    initials: Vec<char>,
    max_bytes: usize,
    /// Matching words of the fragment being read, then of the best one (byte ranges).
    marks: Vec<std::ops::Range<usize>>,
}

/// The best fragment found so far: its byte range and where its marks sit in `marks`.
#[derive(Clone, Copy)]
struct Fragment {
    start: usize,
    stop: usize,
    score: usize,
    first_mark: usize,
}

impl Highlighter {
    /// A highlighter of `terms` (analyzed query terms) with fragments of at most
    /// `max_bytes` bytes.
    pub fn new(terms: &[String], max_bytes: usize) -> Self {
        let mut initials: Vec<char> = terms.iter().filter_map(|t| t.chars().next()).collect();
        initials.sort_unstable();
        initials.dedup();
        Self {
            terms: terms.to_vec(),
            initials,
            max_bytes,
            marks: Vec::new(),
        }
    }

    /// The best fragment of `text` as HTML, its matching words in `<b>`; empty when no
    /// word matches.
    pub fn html(&mut self, text: &str) -> String {
        self.marks.clear();
        let mut current = Fragment {
            start: 0,
            stop: 0,
            score: 0,
            first_mark: 0,
        };
        let mut best: Option<Fragment> = None;
        for (from, to) in analysis::words(text) {
            if to - current.start > self.max_bytes {
                best = self.close(current, best);
                current = Fragment {
                    start: from,
                    stop: from,
                    score: 0,
                    first_mark: self.marks.len(),
                };
            }
            current.stop = to;
            if self.is_match(&text[from..to]) {
                current.score += 1;
                self.marks.push(from..to);
            }
        }
        match self.close(current, best) {
            Some(best) => self.render(text, best),
            None => String::new(),
        }
    }

    /// Ends `fragment`: it becomes the best when it scores more than `best` (earlier
    /// fragments win ties); otherwise its marks are dropped.
    fn close(&mut self, fragment: Fragment, best: Option<Fragment>) -> Option<Fragment> {
        if fragment.score > 0 && best.is_none_or(|b| fragment.score > b.score) {
            Some(fragment)
        } else {
            self.marks.truncate(fragment.first_mark);
            best
        }
    }

    /// Whether `word` analyzes to one of the terms.
    fn is_match(&self, word: &str) -> bool {
        let initial = word.chars().next().map(analysis::initial_letter);
        if !initial.is_some_and(|c| self.initials.contains(&c)) {
            return false;
        }
        analysis::term_of_word(word, |term| self.terms.iter().any(|t| t == term)).unwrap_or(false)
    }

    fn render(&self, text: &str, fragment: Fragment) -> String {
        let mut html = String::with_capacity(fragment.stop - fragment.start + 16);
        let mut from = fragment.start;
        for mark in &self.marks[fragment.first_mark..] {
            escape_into(&mut html, &text[from..mark.start]);
            html.push_str("<b>");
            escape_into(&mut html, &text[mark.clone()]);
            html.push_str("</b>");
            from = mark.end;
        }
        escape_into(&mut html, &text[from..fragment.stop]);
        html
    }
}

/// Appends `text` with `"`, `&`, `'`, `<` and `>` escaped as tantivy's snippets escape
/// them.
fn escape_into(html: &mut String, text: &str) {
    let mut from = 0;
    for (at, byte) in text.bytes().enumerate() {
        let entity = match byte {
            b'"' => "&quot;",
            b'&' => "&amp;",
            b'\'' => "&#x27;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => continue,
        };
        html.push_str(&text[from..at]);
        html.push_str(entity);
        from = at + 1;
    }
    html.push_str(&text[from..]);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tantivy::schema::{Schema, TEXT};
    use tantivy::snippet::SnippetGenerator;

    use super::*;

    /// What tantivy's snippet generator answers with the catalog analyzer.
    fn tantivy_html(terms: &[String], text: &str, max_bytes: usize) -> String {
        let mut schema = Schema::builder();
        let field = schema.add_text_field("text", TEXT);
        let words: BTreeMap<String, f32> = terms.iter().map(|t| (t.clone(), 1.0)).collect();
        SnippetGenerator::new(words, analysis::catalog_analyzer(), field, max_bytes)
            .snippet(text)
            .to_html()
    }

    /// Texts with every case the fragment rules meet: matches early and late, ties
    /// between fragments, several matches in one fragment, words longer than a token,
    /// Cyrillic (two bytes a letter), `ё`, markup to escape, stemmed and irregular forms.
    #[test]
    fn highlights_equal_tantivy_snippets_with_the_catalog_analyzer() {
        let long_word = "x".repeat(39) + " " + &"y".repeat(40) + " " + &"z".repeat(41);
        let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(4);
        let texts = [
            String::new(),
            "Matrix".to_owned(),
            "The Matrix Reloaded & <Matrix> \"Revolutions\" isn't it".to_owned(),
            format!("{filler} matrix at the end"),
            format!("matrix first, {filler} then matrices and more matrix {filler} matrix"),
            format!("Ёлки зелёные {filler} ёлка, Ёлки и ЕЛКИ — елки-палки {filler} ёлочка"),
            "Матрица: Перезагрузка. Матрицы, матрицу, матрицей! Звёздные войны — звездная война"
                .repeat(3),
            format!("{long_word} matrix {long_word} dying skies skiers happy die sky"),
            format!("{filler}{filler}{filler}"),
            "café naïve façade ǅemal Ωmega x҂y 2000 2000-е 2000s".to_owned(),
        ];
        let queries = [
            "matrix",
            "matrices revolutions",
            "ёлка",
            "матрица война",
            "звездные",
            "die sky ski",
            "2000",
            "lorem elit",
            "nothing",
            "x",
        ];
        let mut compared = 0;
        for query in queries {
            let terms = analysis::terms(query);
            for max_bytes in [160, 40, 7] {
                // One highlighter serves every hit of a search.
                let mut highlighter = Highlighter::new(&terms, max_bytes);
                for text in &texts {
                    assert_eq!(
                        highlighter.html(text),
                        tantivy_html(&terms, text, max_bytes),
                        "{query:?} in {text:?} at {max_bytes}"
                    );
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, queries.len() * texts.len() * 3);
        // The fragment ends with its last word.
        let terms = analysis::terms("matrix");
        assert_eq!(
            Highlighter::new(&terms, 160).html("The <Matrix> & 'matrix'"),
            "The &lt;<b>Matrix</b>&gt; &amp; &#x27;<b>matrix</b>"
        );
    }
}
