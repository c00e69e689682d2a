"""Who the demo's customers are and what they say (pure data).

Each customer has a short conversation of a few turns, played in order; a turn
is text, a photo (with a caption) or a voice note. Some WhatsApp customers also
call, from the same number, so one person shows up on two channels.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    turns: tuple[Turn, ...]


WHATSAPP = (
    Customer("4915112345678", "Lena Fischer", (
        image("Hallo, meine Bestellung 4711 kam heute so an 😕"),
        text("Der Mixer darin startet nicht mehr."),
        text("Können Sie mir Ersatz schicken? Den kaputten schicke ich gern zurück."))),
    Customer("447700900123", "Oliver Smith", (
        VOICE,
        text("Sorry, on a noisy train, hence the voice note. Can I change the delivery address for order 5520?"),
        text("It should go to 12 Baker Street, London NW1 6XE instead."),
        text("Brilliant, thanks!"))),
    Customer("33612345678", "Camille Martin", (
        text("Bonjour, je n'ai pas reçu ma facture pour la commande 3381."),
        text("Je l'ai payée par carte le 2 décembre."),
        text("Vous pouvez l'envoyer à camille.martin@example.fr ?"))),
    Customer("34612345678", "Lucía García", (
        text("Hola, ¿tenéis la chaqueta azul en talla M?"),
        text("La del catálogo de invierno, referencia JK-204."),
        text("Vale, ¡gracias!"))),
    Customer("5511912345678", "João Silva", (
        text("Olá! Qual o prazo de entrega para Curitiba?"),
        image("Meu carrinho"),
        text("Se eu pagar hoje chega antes do Natal?"))),
    Customer("919812345678", "Priya Sharma", (
        text("Hi, the coupon WINTER10 says it has expired, but your email says it is valid till Sunday."),
        VOICE,
        text("Could you apply it to order 7784 manually?"))),
)

# Wrote more than 24 hours ago: WhatsApp refuses a free-form reply to them (error 131047).
OUT_OF_WINDOW = Customer("4791234567", "Sven Larsen", (
    text("Hei, could you resend the return label for order 6120? The link in the email has expired."),))
OUT_OF_WINDOW_REPLY = "Hi Sven, sorry for the wait! Here is a fresh return label for order 6120."

TELEGRAM = (
    Customer("521937406", "Maya Cohen", (
        text("Hi, I was charged twice for order #A-1029"),
        text("Both charges are on my Visa ending 4421, 24.90 each."),
        text("Could you refund one of them?"))),
    Customer("733004211", "Ravi Patel", (
        text("Is the store in Berlin Mitte open on Sunday?"),
        text("And until what time on Saturday?"))),
    Customer("611208733", "Anna Kowalska", (
        text("Dzień dobry! Does the gift card work in the online shop too?"),
        text("It is a 50 € card, the code starts with GC-88."),
        text("Super, dziękuję!"))),
    Customer("845512096", "Tom Becker", (
        text("My DHL tracking number 00340434161094042557 has shown no update since Monday."),
        text("Is the parcel lost?"))),
)

# Caller ID names as carriers send them. Lena and Oliver also write on WhatsApp.
CALLERS = (
    Customer("+4915112345678", "LENA FISCHER", ()),
    Customer("+447700900123", "OLIVER SMITH", ()),
    Customer("+14155550123", "JANE ROE", ()),
    Customer("+4930123456", "MAX MUSTERMANN", ()),
)
AGENTS = ("1001", "1002")
