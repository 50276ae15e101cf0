"""The built-in training corpus the generated tokenizers learn their vocabularies from.

A few hundred English sentences in a fixed order (capitals, aerodynamics in the style of the Cranfield
abstracts, grammar, retrieval) plus some Chinese, so that CJK characters get tokens of their own instead
of all mapping to the unknown token. Benchmarks also cut documents of known lengths from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

__all__ = ["training_corpus"]

_CAPITALS = [
    ("Washington, D.C.", "the United States"),
    ("Paris", "France"),
    ("Berlin", "Germany"),
    ("Tokyo", "Japan"),
    ("Beijing", "China"),
    ("Ottawa", "Canada"),
    ("Canberra", "Australia"),
    ("Madrid", "Spain"),
    ("Rome", "Italy"),
    ("Cairo", "Egypt"),
    ("Brasilia", "Brazil"),
    ("New Delhi", "India"),
]
_CAPITAL_TEMPLATES = [
    "What is the capital of {country}?",
    "{city} is the capital of {country}.",
    "The capital city of {country} is {city}, home to its national government.",
    "Many tourists visit {city} every year to see the museums of {country}.",
]
_CITY_FACTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of "
    "Columbia) is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since before it was a country.",
    "Large cities grow around rivers, ports and railway junctions.",
    "The population of the city increased after the new bridge was built.",
]
_AERO_SUBJECTS = [
    "the boundary layer",
    "the laminar flow",
    "the turbulent wake",
    "the supersonic jet",
    "the shock wave",
    "the heat transfer rate",
    "the pressure distribution",
    "the swept wing",
    "the blunt body",
    "the hypersonic nozzle",
]
_AERO_VERBS = [
    "is measured on",
    "was computed for",
    "depends strongly on",
    "is reduced near",
    "separates from",
]
_AERO_OBJECTS = [
    "a flat plate at zero incidence",
    "the leading edge of an airfoil",
    "a slender cone in a wind tunnel",
    "the surface of a cylinder at high mach number",
    "an aircraft fuselage in transonic flight",
    "the trailing edge under a strong pressure gradient",
]
_GRAMMAR = [
    "A noun names a person, place or thing, and a verb describes an action.",
    "Capitalization in English means writing the first letter of a word in upper case.",
    "Proper nouns such as the names of countries and cities are always capitalized.",
    "An adjective modifies a noun, while an adverb modifies a verb or another adjective.",
    "The subject of a sentence usually comes before the verb in English grammar.",
    "Punctuation marks such as commas, periods and question marks separate clauses.",
    "Plural nouns often end in s, but some irregular nouns change their vowels.",
    "Students learn grammar rules by reading books and writing short essays.",
]
# Chinese text, so CJK characters are in the vocabulary instead of all mapping to the unknown token.
_CHINESE = [
    "美国的首都是华盛顿。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "东京是日本的首都。",
    "巴黎是法国的首都，有很多博物馆。",
    "边界层的流动在高马赫数下会分离。",
    "飞机机翼上的压力分布决定了升力。",
    "什么是重排序模型？它根据查询对文档进行打分。",
    "搜索引擎先检索候选文档，然后重新排序。",
    "今天天气很好，我们去公园散步吧。",
    "语法规定了句子中词语的顺序。",
]
_RETRIEVAL = [
    "A reranker scores each document against the query and sorts them by relevance.",
    "Search engines retrieve candidate documents with keyword matching before reranking.",
    "The cross-encoder reads the query and the document together in one transformer pass.",
    "Dense retrieval embeds queries and passages into vectors and compares them by cosine similarity.",
]


def training_corpus() -> list[str]:
    """The sentences the generated tokenizers are trained on (a few hundred, fixed order)."""
    return list(_iter_corpus())


def _iter_corpus() -> Iterator[str]:
    for template, (city, country) in itertools.product(_CAPITAL_TEMPLATES, _CAPITALS):
        yield template.format(city=city, country=country)
    for subject, verb, obj in itertools.product(_AERO_SUBJECTS, _AERO_VERBS, _AERO_OBJECTS):
        yield f"The experiment shows that {subject} {verb} {obj}."
    yield from _CITY_FACTS
    yield from _GRAMMAR
    yield from _RETRIEVAL
    yield from _CHINESE
