"""Seeded text for synthetic pages: words, lines and paragraphs in several languages.

Small built-in vocabularies keep generation offline and identical on every machine
(a corpus read from the local disk would differ between hosts and break the
"same seed, same sample" rule). Numbers, dates, prices and codes are mixed in
because real documents are full of them and OCR models must read them.
"""
from __future__ import annotations

import random

WORDS = {
    "en": """the of and data model report table figure page section result value total annual revenue growth
        market customer service product quality system network energy water city river mountain weather
        morning evening history science school student teacher research method analysis summary chapter
        price order invoice account balance payment shipping address number street north south east west
        green blue large small early late simple complex first second final public private local global""",
    "fr": """le la les de des et un une rapport tableau page résultat valeur total croissance marché client
        service produit qualité système réseau énergie eau ville rivière montagne météo matin soir histoire
        science école élève professeur recherche méthode analyse résumé chapitre prix commande facture""",
    "de": """der die das und ein eine Bericht Tabelle Seite Ergebnis Wert Summe Wachstum Markt Kunde Dienst
        Produkt Qualität System Netzwerk Energie Wasser Stadt Fluss Berg Wetter Morgen Abend Geschichte
        Wissenschaft Schule Schüler Lehrer Forschung Methode Analyse Übersicht Kapitel Preis Bestellung""",
    "es": """el la los de y un una informe tabla página resultado valor total crecimiento mercado cliente
        servicio producto calidad sistema red energía agua ciudad río montaña tiempo mañana tarde historia
        ciencia escuela alumno profesor investigación método análisis resumen capítulo precio pedido""",
    "zh": """数据 模型 报告 表格 图片 页面 章节 结果 数值 总计 年度 收入 增长 市场 客户 服务 产品 质量 系统
        网络 能源 水资源 城市 河流 山脉 天气 早上 晚上 历史 科学 学校 学生 老师 研究 方法 分析 摘要 价格
        订单 发票 账户 余额 付款 地址 北方 南方 简单 复杂 第一 最终 公共 全球""",
    "ja": """データ モデル 報告書 表 図 ページ 結果 値 合計 年間 売上 成長 市場 顧客 サービス 製品 品質
        システム ネットワーク エネルギー 水 都市 川 山 天気 朝 夜 歴史 科学 学校 学生 先生 研究 方法
        分析 要約 価格 注文 請求書 口座 住所 東京 大阪 新しい 簡単""",
    "ko": """데이터 모델 보고서 표 그림 페이지 결과 값 합계 연간 매출 성장 시장 고객 서비스 제품 품질
        시스템 네트워크 에너지 물 도시 강 산 날씨 아침 저녁 역사 과학 학교 학생 선생님 연구 방법 분석
        요약 가격 주문 송장 계좌 주소 서울 부산 새로운 간단한""",
}
LANGUAGES = tuple(WORDS)
CJK = ("zh", "ja", "ko")
# Chinese and Japanese are written without spaces between words; Korean uses spaces.
NO_SPACES = ("zh", "ja")
_VOCAB = {lang: words.split() for lang, words in WORDS.items()}


def token(lang: str, rng: random.Random) -> str:
    """A word, or now and then a number, date, price or code."""
    r = rng.random()
    if r < 0.06:
        return str(rng.randint(1, 9999))
    if r < 0.08:
        return f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if r < 0.10:
        return f"{rng.choice('$€£¥')}{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"
    if r < 0.11:
        return f"{rng.choice('ABCDEFGHKLMNPRSTXZ')}{rng.choice('ABCDEFGHKLMNPRSTXZ')}-{rng.randint(100, 999)}"
    word = rng.choice(_VOCAB[lang])
    return word.capitalize() if lang not in CJK and rng.random() < 0.1 else word


def words(lang: str, n: int, rng: random.Random) -> list[str]:
    return [token(lang, rng) for _ in range(max(1, n))]


def join(lang: str, tokens: list[str]) -> str:
    return "".join(tokens) if lang in NO_SPACES else " ".join(tokens)


def sentence(lang: str, rng: random.Random, lo: int = 4, hi: int = 12) -> str:
    text = join(lang, words(lang, rng.randint(lo, hi), rng))
    end = "。" if lang in NO_SPACES else "."
    return (text[0].upper() + text[1:] if lang not in CJK else text) + end


def paragraph(lang: str, rng: random.Random, sentences: tuple[int, int] = (2, 5)) -> str:
    sep = "" if lang in NO_SPACES else " "
    return sep.join(sentence(lang, rng) for _ in range(rng.randint(*sentences)))


def title(lang: str, rng: random.Random) -> str:
    text = join(lang, words(lang, rng.randint(2, 5), rng))
    return text.title() if lang not in CJK else text


def charset(lang: str) -> str:
    """Every character ``token`` can produce for ``lang``: a face covering it draws any text."""
    extra = "0123456789-.$€£¥ABCDEFGHKLMNPRSTXZ" + ("。" if lang in NO_SPACES else "")
    return "".join(sorted(set("".join(_VOCAB[lang]) + "".join(w.capitalize() for w in _VOCAB[lang]) + extra)))
