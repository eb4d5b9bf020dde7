"""Turn raw RFC 5322 bytes into an `InboundMessage`, however broken the mail is.

Real customer mail is mislabelled (GB2312 labels on GBK bytes), carries raw 8-bit headers, loses its
MIME boundaries and quotes whole threads. Python's `email` package parses the structure; everything
that decodes text (headers, parameters, bodies) is done here from the original bytes so that a wrong
label never turns Chinese into U+FFFD. Pure Python, no Django.
"""

from channels_in.mail.html import html_to_text, sanitise_html
from channels_in.mail.parse import parse_mail
from channels_in.mail.quotes import trim_quoted

__all__ = ["html_to_text", "parse_mail", "sanitise_html", "trim_quoted"]
