"""Token counts faster than the tokenizer runs, never different from what it would count.

A length profile needs only how many tokens a text has. For some tokenizers that count splits
exactly over pieces of the text that a cheap cut finds, and real corpora reuse few distinct
pieces, so each piece is tokenized once and its count cached:

    count(text) = specials + sum(count(piece) - specials for piece in pieces(text))

When it holds (the proof, per family):

- BERT WordPiece, cased or uncased (``BertNormalizer``, ``BertPreTokenizer``, ``WordPiece``),
  for any text without control characters other than tab, newline and return:
  - the normalizer works one character at a time: it deletes control and format characters,
    turns every other whitespace character into a space, puts spaces around Chinese characters,
    and lower-cases and strips accents (canonical decomposition, NFD, never makes a space);
  - the pre-tokenizer splits at every whitespace character before anything else, then isolates
    each punctuation character inside each piece, and WordPiece encodes each word alone (a word
    over ``max_input_chars_per_word`` becomes [UNK] alone too);
  - added tokens match inside one chunk (below).
  Three cuts follow:
  - *words*, for ASCII texts that hold nothing an added token matches: the pre-tokenizer's own
    pieces, runs of letters and digits and single punctuation characters (in ASCII, every
    printable character that is no letter, digit or space is punctuation to BERT), lower-cased
    first when the normalizer lower-cases (in ASCII that is all it changes). These are cut and
    fingerprinted for a whole batch at once with numpy, on the bytes;
  - *texts made ASCII* (``chars.py``), for the other texts whose every non-ASCII character a
    table takes, each character learnt through the tokenizer's own normalizer (and
    pre-tokenizer) the first time it is met:
    - the normalizer works one character at a time: canonical decomposition reorders only
      combining marks, and a character whose decomposition keeps one is not taken (where
      accents are stripped, the marks go), so the normalized text is each character's
      normalized form side by side;
    - a character normalized to a space (whitespace) becomes a space, one normalized to nothing
      (a combining mark where accents are stripped, a zero-width character) goes;
    - a *one-token* character is one token wherever it stands, so it is counted apart and
      becomes a space, which splits its neighbours as it did: the normalizer puts spaces around
      it (a Chinese character: one character, a word of its own, and WordPiece makes a word of
      one character one token, its vocabulary entry or [UNK]), or it stays one character that
      the pre-tokenizer cuts out of ``a_a`` (so it is punctuation to BERT: cut out of any text,
      one word of one character);
    - a text's count is then its one-token characters plus its ASCII form's words count.
    Letters the normalizer maps to ASCII (``é`` -> ``e``) are not taken: the corpora hold too
    few of them to pay for it; kana and other letters are words with their neighbours;
  - *chunks*, for every other text: ``str.split()``'s, after spacing out Chinese characters as
    the normalizer does. Outside control characters Python splits at exactly the characters
    the normalizer turns into spaces (the control characters ``\x0b``, ``\x0c``,
    ``\x1c``-``\x1f`` and ``\x85``, which Python splits at and BERT deletes, are what the rule
    leaves out).

- Byte-level BPE (``BPE`` without dropout after ``ByteLevel``, which maps each piece's bytes to
  characters) in two pipelines: GPT-2's and RoBERTa's (``ByteLevel`` with its own regex:
  contractions, runs of letters, of numbers or of other characters each with one space before,
  runs of whitespace) and Qwen2's (gte-Qwen2, Qwen3-Embedding: a ``Split`` with Qwen2's regex,
  each match kept apart, then ``ByteLevel`` without a regex), without a normalizer or with NFC,
  for texts of any script that hold nothing an added token matches, whose every code point
  Python's Unicode assigns and, where the normalizer is NFC, that NFC leaves unchanged:
  - NFC changes nothing: Python's NFC leaves the text unchanged, and the tokenizer's (Rust, of
    another Unicode version) leaves unchanged every such text of code points Python assigns
    (normalization is stable across versions; a test holds it for every code point, alone,
    beside marks of every combining class in both orders, and decomposed);
  - the pre-tokenizer puts a space first where the tokenizer says so (GPT-2's
    ``add_prefix_space``), cuts the text with its regex, maps each piece's bytes to characters,
    and BPE merges inside each piece alone: a text's count is its pieces' sum, and a piece is
    counted as the tokenizer counts a pre-token, by its model, the piece's bytes mapped to
    characters as ``ByteLevel`` maps them (a map asked of ``ByteLevel`` itself);
  - the pieces: each regex asks of a character only which of a few classes it is in (a letter,
    ``\\p{L}``; a number, ``\\p{N}``; whitespace, ``\\s``; the space; a return or newline; the
    apostrophe; a contraction's letter, in any case under Qwen2's ``(?i:...)``; another). Each
    character's class is asked of the tokenizer's own regex engine (Oniguruma), and one that
    fits no single class is refused. Over the classes each regex reads as a few local rules
    (``bytelevel.py``), held equal to the tokenizer's own ``Split`` on every code point Python
    assigns, in contexts that tell every class apart.

- SentencePiece Unigram (XLM-R's layout: bge-m3, multilingual-e5): a Unigram model with an
  unknown token, any normalizer, the Metaspace pre-tokenizer (``▁``, split, a ``▁`` put first:
  ``always``, or ``first`` alone), alone or after a WhitespaceSplit (``always``), a template
  post-processor or none; for every text that holds no added token's text, as written or
  normalized (the others go to the tokenizer):
  - such a text is one segment: the tokenizer normalizes it whole, as the rule does with the
    tokenizer's own normalizer, whatever it does (a precompiled NFKC map turns characters into
    spaces, composes several into one, deletes controls). ``first`` puts a ``▁`` before the
    segment that starts the text: the only one here, as ``always`` does;
  - Metaspace turns spaces into ``▁``, puts one first where the text has none, and starts a
    piece at each ``▁`` (after a WhitespaceSplit: each word of Rust's whitespace, with a ``▁``
    first unless it has one); the model segments each piece alone (Viterbi inside it), so a
    text's count is its pieces' sum, and a piece is counted by the model alone: the tokenizer's
    own model object (not its scores read back from JSON, which could round them anew), pieces
    joined a call and cut again at their ``▁`` by a Metaspace that puts none first;
  - the pieces are cut in Python (``str.split`` where it cuts where Rust does: no \x1c-\x1f,
    no ``▁`` in the text) or, for ASCII texts, with numpy on the bytes; an ASCII text without a
    return skips the precompiled map where the normalizer starts with one: the map changes each
    grapheme cluster alone, and in ASCII every character is one but CR LF, so it changes each
    character as it changes that character alone (read from the map itself), and the steps after
    it that Python does the same (Strip at Rust's whitespace, Replace of a string or of runs of
    spaces) are done here; other normalizers run whole.
  Not cut further: a boundary every segmentation has (two characters no vocabulary piece holds
  side by side) would split a piece's Viterbi in two only in exact arithmetic; the model adds
  f64 scores as read by serde_json (a quarter of them an ulp off their f32 values here), so
  the part after it starts from another sum, and a near tie may fall the other way.

Added tokens are matched before anything else: one that is not normalized (special tokens, by
default) in the text as written, a normalized one (``add_tokens``' default) in the normalized
text, by its own text normalized by the tokenizer's normalizer (``Schrödinger`` as
``schrodinger`` in uncased BERT); each may keep to whole words (single_word) and take the
spaces before or after it (lstrip, rstrip). A rule finds what each matches in any case (finding
more only sends more texts to the tokenizer) and leaves the texts that hold any to the
tokenizer (BERT: their chunks):
- in an ASCII text, BERT's normalized text is the text lower-cased where the normalizer
  lower-cases, whitespace turned into spaces: a normalized token matches there only where its
  normalized text is found in any case. A text made ASCII is that too: the table takes no
  character a token holds, as written or normalized (its texts take the chunks), so the
  ASCII form holds, in any case, every match the text or its normalized text holds; and where a
  token keeps to whole words (single_word), no one-token character but the spaced-out ones (a
  space is no word character, punctuation may be: ``＿``);
- BERT counts such chunks with the tokenizer, joined by spaces. What a token matches lies in
  one chunk where it holds no whitespace and a Chinese character only alone (chunks end at
  whitespace, or at spaces in the normalized text; a normalized Chinese character matches
  itself with the spaces put around it, which are its own). single_word sees the same neighbours there
  as in the text, but for a Chinese character next to a token matched as written (a word
  character, where the chunk ends). The spaces lstrip and rstrip take count no token, and a
  token that took the space before its chunk counts where it ends. Refused: a normalized token
  that takes spaces on both sides (it may take a neighbour's, put around a Chinese character),
  and one whose normalized text is empty (it splits every text between its characters);
- byte-level BPE: a text that holds none is one split whatever the tokens' options, and its
  pieces are counted by the model, where no added token is matched (a token that starts with a
  space matches nothing in the space put first: it is put after the added tokens are matched);
- SentencePiece Unigram: a text that holds a token's text, as written (a normalized token's
  also normalized, in the normalized text, where the tokenizer looks for it), goes to the
  tokenizer whatever the tokens' options (the tokenizer matches them exactly there: no case is
  needed); refused: a token whose text is empty or normalized to nothing;
- BERT and byte-level BPE: each token's text must encode to that token (or one that matches
  the same): the tokenizer matches what the rule thinks it does.
A token a rule cannot take makes ``recognise`` refuse the tokenizer: it is counted exactly.

Texts a rule leaves out, and tokenizers no rule recognises, go through the full tokenizer.
Every run checks itself: the first 1,000 texts the run counts, where they take this way, and
one in a hundred after that are counted by the full tokenizer too, and any difference stops the
fast path.

    >>> from lenprof import load_tokenizer
    >>> from lenprof.count.fast.counter import FastCounter
    >>> counter = FastCounter(load_tokenizer(None).backend)
    >>> counter.rule.family, counter.count(["Hello, world!", "hello world", "a\x0bb", "中文"]).tolist()
    ('bert-wordpiece', [6, 4, 3, 4])
    >>> counter.texts, counter.fast  # the third has a control character: the tokenizer counted it
    (4, 3)
"""
