"""Who the demo's customers are and what they say (pure data).

Each customer has a few topics, each a short conversation of a few turns
played in order; a turn is text, a photo (with a caption) or a voice note. A
customer done with one topic later comes back with the next, so a long run or
a rerun does not repeat the same sentences back to back. Every topic of Lena's
has a photo and every topic of Oliver's a voice note, so each run shows both. Some WhatsApp customers also
call, from the same number, so one person shows up on two channels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Turn:
    kind: str  # "text" | "image" | "voice"
    text: str = ""  # the body, or the photo's caption


def text(body: str) -> Turn:
    return Turn("text", body)


def image(caption: str) -> Turn:
    return Turn("image", caption)


VOICE = Turn("voice")


@dataclass(frozen=True)
class Customer:
    id: str  # wa_id, Telegram user id, or phone number
    name: str
    topics: tuple[tuple[Turn, ...], ...] = ()


WHATSAPP = (
    Customer("4915112345678", "Lena Fischer", ((
        image("Hallo, meine Bestellung 4711 kam heute so an 😕"),
        text("Der Mixer darin startet nicht mehr."),
        text("Können Sie mir Ersatz schicken? Den kaputten schicke ich gern zurück.")), (
        text("Guten Morgen! Der Ersatz-Mixer ist angekommen, danke."),
        image("Diesmal kam alles heil an 👍"),
        text("Brauchen Sie den alten noch, oder darf ich ihn entsorgen?")))),
    Customer("447700900123", "Oliver Smith", ((
        VOICE,
        text("Sorry, on a noisy train, hence the voice note. Can I change the delivery address for order 5520?"),
        text("It should go to 12 Baker Street, London NW1 6XE instead."),
        text("Brilliant, thanks!")), (
        text("Hi again, the courier left a card saying they couldn't deliver."),
        VOICE,
        text("Can they try again on Friday afternoon?")))),
    Customer("33612345678", "Camille Martin", ((
        text("Bonjour, je n'ai pas reçu ma facture pour la commande 3381."),
        text("Je l'ai payée par carte le 2 décembre."),
        text("Vous pouvez l'envoyer à camille.martin@example.fr ?")), (
        text("Merci pour la facture ! Par contre l'adresse de facturation est fausse."),
        text("C'est 8 rue des Lilas, 69003 Lyon."),
        text("Vous pouvez la corriger ?")))),
    Customer("34612345678", "Lucía García", ((
        text("Hola, ¿tenéis la chaqueta azul en talla M?"),
        text("La del catálogo de invierno, referencia JK-204."),
        text("Vale, ¡gracias!")), (
        text("Me ha llegado la chaqueta, pero me queda un poco grande."),
        text("¿Puedo cambiarla por una talla S?")))),
    Customer("5511912345678", "João Silva", ((
        text("Olá! Qual o prazo de entrega para Curitiba?"),
        image("Meu carrinho"),
        text("Se eu pagar hoje chega antes do Natal?")), (
        text("Oi, o pagamento por Pix não foi confirmado ainda."),
        text("Paguei há uma hora, pedido 9921."),
        text("Podem verificar, por favor?")))),
    Customer("919812345678", "Priya Sharma", ((
        text("Hi, the coupon WINTER10 says it has expired, but your email says it is valid till Sunday."),
        VOICE,
        text("Could you apply it to order 7784 manually?")), (
        text("Thanks for the discount! One more thing: can I add gift wrapping to order 7784?"),
        text("It's a birthday present for my sister.")))),
)

# Wrote more than 24 hours ago: WhatsApp refuses a free-form reply to them (error 131047).
OUT_OF_WINDOW = Customer("4791234567", "Sven Larsen", ((
    text("Hei, could you resend the return label for order 6120? The link in the email has expired."),),))
OUT_OF_WINDOW_REPLY = "Hi Sven, sorry for the wait! Here is a fresh return label for order 6120."

TELEGRAM = (
    Customer("521937406", "Maya Cohen", ((
        text("Hi, I was charged twice for order #A-1029"),
        text("Both charges are on my Visa ending 4421, 24.90 each."),
        text("Could you refund one of them?")), (
        text("The refund for #A-1029 hasn't shown up on my card yet."),
        text("How many days does it usually take?")))),
    Customer("733004211", "Ravi Patel", ((
        text("Is the store in Berlin Mitte open on Sunday?"),
        text("And until what time on Saturday?")), (
        text("Do you have parking near the Berlin Mitte store?"),
        text("Great, I'll come by tomorrow then 👍")))),
    Customer("611208733", "Anna Kowalska", ((
        text("Dzień dobry! Does the gift card work in the online shop too?"),
        text("It is a 50 € card, the code starts with GC-88."),
        text("Super, dziękuję!")), (
        text("The checkout says my gift card has only 12 € left, but I haven't used it."),
        text("Can you check the balance?")))),
    Customer("845512096", "Tom Becker", ((
        text("My DHL tracking number 00340434161094042557 has shown no update since Monday."),
        text("Is the parcel lost?")), (
        text("Parcel arrived today, thanks for chasing DHL!"),
        text("One of the two cables is missing though."),
        text("Can you send it separately?")))),
)

# Caller ID names as carriers send them. Lena and Oliver also write on WhatsApp.
CALLERS = (
    Customer("+4915112345678", "LENA FISCHER"),
    Customer("+447700900123", "OLIVER SMITH"),
    Customer("+14155550123", "JANE ROE"),
    Customer("+4930123456", "MAX MUSTERMANN"),
)
AGENTS = ("1001", "1002")


@dataclass
class Conversations:
    """Where each customer is: which topic, which turn. Once everyone is done, each moves to their next topic."""

    customers: tuple[Customer, ...]
    topic: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)

    def _turns(self, customer: Customer, rng: random.Random) -> tuple[Turn, ...]:
        if customer.id not in self.topic:  # a rerun need not start where the last run did
            self.topic[customer.id] = rng.randrange(len(customer.topics))
        return customer.topics[self.topic[customer.id] % len(customer.topics)]

    def next_turn(self, rng: random.Random) -> tuple[Customer, Turn]:
        waiting = [c for c in self.customers if self.done.get(c.id, 0) < len(self._turns(c, rng))]
        if not waiting:
            for c in self.customers:
                self.topic[c.id] += 1
            self.done.clear()
            waiting = list(self.customers)
        customer = rng.choice(waiting)
        turn = self._turns(customer, rng)[self.done.get(customer.id, 0)]
        self.done[customer.id] = self.done.get(customer.id, 0) + 1
        return customer, turn
