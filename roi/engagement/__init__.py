"""What kind of community pays (issue 20): engagement tiers, programmes and community-led
acquisition; :func:`roi.engagement.block.community_engagement_block` builds the
``community_engagement`` block of ``results.json``."""
