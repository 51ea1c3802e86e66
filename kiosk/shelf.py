"""What a kiosk knows of its shelf: the newest availability of each item, by item id."""

from __future__ import annotations

from broker.messages import Availability


class ShelfView:
    """The items on this kiosk's shelf as central last announced them (retained per item)."""

    def __init__(self) -> None:
        self.shelf_id: str | None = None  # None until central's config names the shelf
        self.items: dict[str, Availability] = {}

    def update(self, availability: Availability) -> bool:
        """Take a newer copy of one item's state; whether it changed anything."""
        if self.shelf_id is not None and availability.shelf_id != self.shelf_id:
            return False  # a copy still in flight from the shelf this kiosk was moved away from
        current = self.items.get(availability.item_id)
        if current is not None and current.seq >= availability.seq:
            return False  # stale or repeated
        self.items[availability.item_id] = availability
        return True

    def forget(self, item_id: str) -> None:
        """Central cleared the item's retained state: it moved to another shelf."""
        self.items.pop(item_id, None)

    def move_to(self, shelf_id: str) -> None:
        """The kiosk now serves ``shelf_id``: forget the old shelf's items."""
        self.shelf_id = shelf_id
        self.items = {k: a for k, a in self.items.items() if a.shelf_id == shelf_id}
