"""Detokenizers for zero-shot perplexity: tokenized research corpora back to running text.

MDLM and SEDD evaluate models trained on raw web text on PTB, WikiText and LAMBADA after undoing each
corpus's tokenization, so that a BPE model reads text that looks like its training data. These
functions implement the documented effects of those detokenizers (written here from the rules, not
copied), one rule per line of each docstring, applied in order:

`ptb_detokenizer` (Mikolov's PTB: lower case, numbers as `N`, rare words as `<unk>`):
  1. a possessive or `n't` joins the previous word: "company 's" -> "company's", "do n't" -> "don't";
  2. a plural possessive closes up: "investors ' money" -> "investors' money";
  3. `\\/` becomes `/`;
  4. the number placeholder `N` (a whole word) becomes `1`;
  5. currency and number signs join their number: "$ 1" -> "$1", "# 1" -> "#1";
  6. `<unk>` becomes `?`.
  Other clitics ('re, 've, 'm, 'll, 'd) are left as they are, as in the papers' detokenizer, so that
  numbers stay comparable with theirs.

`wikitext_detokenizer` (WikiText's tokenization, raw or with `<unk>`):
  1. number separators close up: " @-@ " -> "-", " @,@ " -> ",", " @.@ " -> ".";
  2. spaces before punctuation go: " , " -> ", ", and the same for . : ; ! ?;
  3. brackets and double quotes close around their content: "( a b )" -> "(a b)", '" a b "' -> '"a b"'
     (also [ ] and { });
  4. a possessive 's joins its word; "s '" closes up to "s'";
  5. heading markers close up: "= = Title = =" -> "== Title ==";
  6. spaces around line breaks go, and the number placeholder " N " becomes " 1 ".

`lambada_detokenizer` (LAMBADA, OpenAI's version): curly quotes become straight quotes and the
passage is stripped of surrounding whitespace.

`text8_normalize`: for character models trained on text8 (a-z and space only): lower case, every
other character becomes a space, runs of spaces collapse to one. An approximation, not a detokenizer.
"""

from __future__ import annotations

import re


def ptb_detokenizer(text: str) -> str:
    """PTB text -> running text (rules in the module docstring)."""
    text = re.sub(r" ('s|n't)\b", r"\1", text)
    text = re.sub(r"s ' ", "s' ", text)
    text = text.replace("\\/", "/")
    text = re.sub(r"(?<!\S)N(?!\S)", "1", text)
    text = re.sub(r"([$#]) (?=\d)", r"\1", text)
    return text.replace("<unk>", "?")


def wikitext_detokenizer(text: str) -> str:
    """WikiText text -> running text (rules in the module docstring)."""
    text = re.sub(r" @([-,.])@ ", r"\1", text)
    text = re.sub(r" ([,.:;!?])(?= |\n|$)", r"\1", text)
    text = re.sub(r"\( ([^()]*?) \)", r"(\1)", text)
    text = re.sub(r"\[ ([^\[\]]*?) \]", r"[\1]", text)
    text = re.sub(r"\{ ([^{}]*?) \}", r"{\1}", text)
    text = re.sub(r'" ([^"\n]*?) "', r'"\1"', text)
    text = re.sub(r" 's\b", "'s", text)
    text = re.sub(r"s ' ", "s' ", text)
    text = re.sub(r"=(?: =)+", lambda m: m.group(0).replace(" ", ""), text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"(?<= )N(?= )", "1", text)


def lambada_detokenizer(text: str) -> str:
    """LAMBADA passage -> running text (rules in the module docstring)."""
    for curly, straight in (("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'")):
        text = text.replace(curly, straight)
    return text.strip()


def text8_normalize(text: str) -> str:
    """Lower-case a-z and single spaces only (see the module docstring)."""
    return re.sub(r" +", " ", re.sub(r"[^a-z]", " ", text.lower())).strip()


def identity(text: str) -> str:
    return text


DETOKENIZERS = {"ptb": ptb_detokenizer, "wikitext": wikitext_detokenizer, "lambada": lambada_detokenizer,
                "none": identity}
