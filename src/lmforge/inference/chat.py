"""`lmforge chat`: an interactive terminal chat with history, or one answer per prompt for scripts.

Interactive mode streams each reply, keeps the conversation (so follow-up questions see earlier turns), and knows
two commands: `/clear` forgets the history (the system prompt stays), `/exit` quits (so does end of input).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from lmforge.inference.engine import GenerationOptions
from lmforge.templates import Message

CLEAR, EXIT = "/clear", "/exit"
USER_PROMPT = "user> "
HELP = f"Type a message; {CLEAR} forgets the conversation, {EXIT} (or Ctrl-D) quits."


class ChatSession:
    """A conversation with the engine: the system prompt plus alternating user/assistant turns."""

    def __init__(self, engine: Any, options: GenerationOptions, system: str | None = None) -> None:
        self.engine = engine
        self.options = options
        self.system = system
        self.messages: list[Message] = []
        self.clear()

    def clear(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def ask(self, text: str) -> Iterator[str]:
        """Stream the reply to `text`; the exchange joins the history once the reply is complete."""
        conversation = [*self.messages, {"role": "user", "content": text}]
        pieces: list[str] = []
        for piece in self.engine.stream(conversation, self.options):
            pieces.append(piece)
            yield piece
        self.messages = [*conversation, {"role": "assistant", "content": "".join(pieces)}]


def answer_prompts(
    engine: Any, prompts: Iterable[str], options: GenerationOptions, system: str | None, out: TextIO
) -> None:
    """Each prompt as its own single-turn conversation; one reply per prompt, in order, each ending a line."""
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    for prompt in prompts:
        reply = engine.generate([*head, {"role": "user", "content": prompt}], options)
        out.write(reply + "\n")
        out.flush()


def interactive_chat(session: ChatSession, stdin: TextIO, out: TextIO) -> None:
    """Read lines until `/exit` or end of input; stream each reply."""
    out.write(HELP + "\n")
    while True:
        out.write(USER_PROMPT)
        out.flush()
        line = stdin.readline()
        if not line:  # end of input
            out.write("\n")
            return
        text = line.strip()
        if text == EXIT:
            return
        if text == CLEAR:
            session.clear()
            out.write("(conversation cleared)\n")
        elif text:
            out.write("assistant> ")
            for piece in session.ask(text):
                out.write(piece)
                out.flush()
            out.write("\n")
