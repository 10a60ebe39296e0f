"""The shop's funnel: what a visitor does next, given what they did last.

A session lands on a page, then searches, views products, adds them to the cart (and sometimes removes
them), checks out and buys, and may leave at every step; the ratios are the named constants below. A bot
crawls pages and products at random until it rotates its session cookie.

Every event a session can emit is a :data:`Step`, encoded once (its JSON fragment, see
:mod:`rtap.generate.fragments`, and its codes in the truth) when the funnel is built, or for cart
changes when first needed: advancing a session is then a few comparisons and an index, which the
generator's per-record budget allows.
"""

from __future__ import annotations

from rtap.contract.vocabulary import PAGE_VIEW_TYPES, PURCHASE
from rtap.generate import fragments
from rtap.generate.catalog import Catalog
from rtap.generate.ids import UuidStream
from rtap.generate.truth import GroundTruth

# -- probabilities of the next step given the last one (the rest of each row is named) -------------------
BOUNCE_RATE = 0.32  # leave right after the landing page
PAGE_LEAVE = 0.20  # leave after a later page view
PAGE_TO_SEARCH = 0.35  # after a page view that did not end the session
PAGE_TO_PAGE = 0.20  # ... another content page; the rest views a product
SEARCH_ABANDON = 0.15  # leave from the search results; the rest clicks a product
PRODUCT_LEAVE = 0.25  # after a product view
PRODUCT_TO_PRODUCT = 0.35
PRODUCT_TO_PAGE = 0.10  # ... the rest (0.30) adds the product to the cart
CART_REMOVE = 0.10  # after add_to_cart (or a removal that left items in the cart)
CART_CHECKOUT = 0.45
CART_CONTINUE = 0.30  # back to browsing products; the rest (0.15) abandons the cart
EMPTY_CART_CONTINUE = 0.55  # after removing the last item: keep browsing, or leave
CHECKOUT_TO_PURCHASE = 0.68  # the rest abandons the checkout
# Quantity of an added item: 1, 2 or 3 with these cumulative probabilities.
QUANTITY_CUMULATIVE = (0.80, 0.95)
# A bot's next request is a page with this probability, else a product.
BOT_PAGE_SHARE = 0.5

# Funnel states: the last step of a session. _DONE: the visit is over (bought, or a bot rotated its cookie).
_NEW, _LANDED, _PAGE, _SEARCH, _PRODUCT, _CART, _REMOVED, _CHECKOUT, _PURCHASE, _DONE = range(10)

# One step of a session: (JSON fragment from "event_type" to the step's last field, the step's URL as the
# next event's referrer fragment, the truth's code of the event type, of the page if the truth counts it
# as a page view else -1, revenue in 10^-PRICE_SCALE units for purchases else 0).
Step = tuple[bytes, bytes, int, int, int]


class Session:
    """Per-session state and the fragments that are the same in each of its events."""

    __slots__ = (
        "cart",
        "is_bot",
        "key",
        "order_fragment",
        "order_id",
        "partition",
        "product",
        "referrer",
        "remaining",
        "session_id",
        "state",
        "tail",
        "user_code",
    )

    def __init__(
        self, session_id: str, key: bytes, partition: int, user_code: int, referrer: bytes, tail: bytes
    ) -> None:
        self.session_id = session_id
        self.key = key
        self.partition = partition
        self.user_code = user_code  # the truth's code of the user_id
        self.referrer = referrer  # the referrer fragment of the next event: where the visitor came from
        self.tail = tail  # from "user_id" to the end of the object
        self.is_bot = False
        self.state = _NEW
        self.product = 0  # catalog index of the product last viewed
        self.cart: list[tuple[int, int]] = []  # (product index, quantity)
        self.order_id = ""
        self.order_fragment = b""
        self.remaining = 0  # a bot's requests left before it rotates its cookie


class Funnel:
    """The steps of one shop, and :meth:`step`, which advances a session by one event.

    ``order_ids`` must be set before the first checkout can turn into a purchase (the generator seeds it at
    its first send).
    """

    def __init__(self, catalog: Catalog, truth: GroundTruth) -> None:
        self._catalog = catalog
        self._truth = truth
        self.order_ids: UuidStream | None = None
        # Every step that does not involve a cart, encoded once: pages, searches, product views, checkout.
        self._page_steps = [self._plain_step("page_view", url) for url in catalog.pages]
        self._search_steps = [self._plain_step("search", url) for url in catalog.search_urls]
        self._view_steps = [self._product_step("product_view", index, 1) for index in range(len(catalog.products))]
        self._checkout_step = self._plain_step("checkout", catalog.checkout_url)
        # (event_type, product index, quantity) -> step, made when first needed: carts are rarer than views.
        self._cart_steps: dict[tuple[str, int, int], Step] = {}

    def step(self, session: Session, u1: float, u2: float, page: int, product: int, search: int) -> Step | None:
        """Advance ``session`` by one event; None when the visit is over.

        The rest are the send's draws: two uniform draws in [0, 1) and the Zipf ranks of a page, a product and
        a search (see :mod:`rtap.generate.draws`), used or not.
        """
        state = session.state
        if state == _DONE:
            return None
        if session.is_bot:
            session.remaining -= 1
            if session.remaining <= 0:
                session.state = _DONE
            if u1 < BOT_PAGE_SHARE:
                return self._page_steps[int(u2 * len(self._page_steps))]
            return self._view_steps[int(u2 * len(self._view_steps))]
        if state == _NEW:
            session.state = _LANDED
            return self._page_steps[page]
        if state in (_LANDED, _PAGE):
            if u1 < (BOUNCE_RATE if state == _LANDED else PAGE_LEAVE):
                return None
            if u2 < PAGE_TO_SEARCH:
                session.state = _SEARCH
                return self._search_steps[search]
            if u2 < PAGE_TO_SEARCH + PAGE_TO_PAGE:
                session.state = _PAGE
                return self._page_steps[page]
            return self._view_product(session, product)
        if state == _SEARCH:
            if u1 < SEARCH_ABANDON:
                return None
            return self._view_product(session, product)
        if state == _PRODUCT:
            if u1 < PRODUCT_LEAVE:
                return None
            if u1 < PRODUCT_LEAVE + PRODUCT_TO_PRODUCT:
                return self._view_product(session, product)
            if u1 < PRODUCT_LEAVE + PRODUCT_TO_PRODUCT + PRODUCT_TO_PAGE:
                session.state = _PAGE
                return self._page_steps[page]
            quantity = 1 if u2 < QUANTITY_CUMULATIVE[0] else 2 if u2 < QUANTITY_CUMULATIVE[1] else 3
            session.cart.append((session.product, quantity))
            session.state = _CART
            return self._cart_step("add_to_cart", session.product, quantity)
        if state == _CART or (state == _REMOVED and session.cart):
            if u1 < CART_REMOVE:
                removed, quantity = session.cart.pop()
                session.state = _REMOVED
                return self._cart_step("remove_from_cart", removed, quantity)
            if u1 < CART_REMOVE + CART_CHECKOUT:
                session.state = _CHECKOUT
                return self._checkout_step
            if u1 < CART_REMOVE + CART_CHECKOUT + CART_CONTINUE:
                return self._view_product(session, product)
            return None
        if state == _REMOVED:  # the cart is empty
            if u1 < EMPTY_CART_CONTINUE:
                return self._view_product(session, product)
            return None
        if state == _CHECKOUT:
            if u1 >= CHECKOUT_TO_PURCHASE:
                return None
            assert self.order_ids is not None
            order_id = self.order_ids.next()
            session.order_id = order_id.decode()
            session.order_fragment = fragments.order(order_id)
            session.state = _PURCHASE
        # _PURCHASE: one purchase event per cart line, all with the session's order_id; then the visit ends.
        bought, quantity = session.cart.pop(0)
        if not session.cart:
            session.state = _DONE
        return self._cart_step("purchase", bought, quantity)

    def _view_product(self, session: Session, product: int) -> Step:
        session.product = product
        session.state = _PRODUCT
        return self._view_steps[product]

    def _cart_step(self, event_type: str, index: int, quantity: int) -> Step:
        step = self._cart_steps.get((event_type, index, quantity))
        if step is None:
            step = self._cart_steps[event_type, index, quantity] = self._product_step(event_type, index, quantity)
        return step

    def _plain_step(self, event_type: str, url: str) -> Step:
        return fragments.page_step(event_type, url), fragments.referrer(url), *self._truth_codes(event_type, url), 0

    def _product_step(self, event_type: str, index: int, quantity: int) -> Step:
        product = self._catalog.products[index]
        url = self._catalog.confirmation_url if event_type == PURCHASE else product.url
        revenue = product.price_units * quantity if event_type == PURCHASE else 0
        fragment = fragments.product_step(event_type, url, product, quantity)
        return fragment, fragments.referrer(url), *self._truth_codes(event_type, url), revenue

    def _truth_codes(self, event_type: str, url: str) -> tuple[int, int]:
        page_code = self._truth.page_code(url) if event_type in PAGE_VIEW_TYPES else -1
        return self._truth.type_code(event_type), page_code
